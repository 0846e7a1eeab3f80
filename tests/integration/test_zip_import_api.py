"""Zip batch imports over HTTP and the import worker, on the real event store, MinIO (a scratch
bucket of its own) and Kafka (a scratch topic and consumer groups of their own).

The request answers 202 with a pending import and creates nothing; the test then publishes the
request's event to its topic (as the relay would), and the import worker, a real consumer
runner, processes it: the report (or the zip's refusal) appears at ``GET /v1/imports/{id}``."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from botocore.exceptions import EndpointConnectionError
from kafka import KafkaProducer
from litestar.testing import TestClient

from api.app import create_app
from commands import messages as m
from commands.bus import CommandBus
from commands.policy import Actor
from commands.results import CommandContext, CommandResult
from domain.icon import Icon
from domain.icon_import import import_id_for
from domain.icon_set import IconSet
from infra.audit.scratch import scratch_database
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from pipelines.import_batch import ZipImporter, staged_zip_key
from pipelines.import_worker import ImportWorker
from pipelines.object_store import ObjectStore
from pipelines.svg_ingest import SvgIngestion
from pipelines.svg_policy import sanitise_svg
from stream import envelope as env
from stream.consumer import ConsumerRunner, Handler
from stream.failures import Backoff
from tests.support import (
    Running,
    appended_since,
    create_scratch_bucket,
    drop_scratch_bucket,
    eventually,
    log_heads,
    object_keys,
    parked_rows,
    scratch_topic,
)

pytestmark = pytest.mark.integration

FAST = Backoff(initial_s=0.01, factor=2.0, max_s=0.05)

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "malicious"
ZIP_ROWS = [row for row in csv.DictReader((CORPUS / "expected.csv").open()) if row["kind"] == "zip"]


def svg(n: int) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
        f'<rect width="{n}" height="{n}"/></svg>'
    ).encode()


def batch(files: dict[str, bytes], icons: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps({"version": 1, "icons": icons}))
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def entry(file: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "file": file,
        "name": name,
        "price": {"amount_minor": 250, "currency": "USD"},
        **extra,
    }


@pytest.fixture(scope="module")
def media_container(settings: Settings) -> Iterator[Container]:
    """An event store of the module's own (no relay or import worker of a running
    `iconmarket run` sees its requests) and a scratch bucket."""
    probe = bootstrap(settings)
    bucket = create_scratch_bucket(probe.s3, "iconmarket-test-zip")
    with scratch_database(settings, prefix="iconmarket_zip") as scratch:
        built = bootstrap(dataclasses.replace(scratch, s3_bucket_private=bucket))
        yield built
        built.close()
    drop_scratch_bucket(probe.s3, bucket)
    probe.close()


@pytest.fixture(scope="module")
def client(media_container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(media_container)) as test_client:
        yield test_client


def auth(container: Container, actor: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(actor, frozenset(roles))).access_token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def topic(media_container: Container) -> Iterator[str]:
    with scratch_topic(media_container, "test.imports", 1) as name:
        yield name


@pytest.fixture(scope="module")
def producer(media_container: Container) -> Iterator[KafkaProducer]:
    made = KafkaProducer(bootstrap_servers=media_container.settings.kafka_bootstrap, acks="all")
    yield made
    made.close()


@pytest.fixture(scope="module")
def groups(media_container: Container) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def new() -> str:
        made.append(f"test-imports-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield new
    admin = media_container.kafka_admin()
    with contextlib.suppress(Exception):
        admin.delete_groups(made)
    admin.close()


@dataclass(frozen=True)
class Pipe:
    """Where this module's import requests go: its container, scratch topic and a producer."""

    container: Container
    topic: str
    producer: KafkaProducer


@pytest.fixture(scope="module")
def pipe(media_container: Container, topic: str, producer: KafkaProducer) -> Pipe:
    return Pipe(media_container, topic, producer)


@pytest.fixture
def own(pipe: Pipe) -> Iterator[Pipe]:
    """A pipe with a topic of the test's own: no other worker (the module's) takes its
    requests."""
    with scratch_topic(pipe.container, "test.imports.own", 1) as name:
        yield dataclasses.replace(pipe, topic=name)


def runner(pipe: Pipe, group: str, handler: Handler, max_attempts: int = 3) -> ConsumerRunner:
    return ConsumerRunner(
        pipe.container.settings,
        group_id=group,
        topics=[pipe.topic],
        handler=handler,
        backoff=FAST,
        poll_timeout_s=0.2,
        max_attempts=max_attempts,
        batch_size=1,
    )


@pytest.fixture(scope="module")
def worker(pipe: Pipe, groups: Callable[[], str]) -> Iterator[Running]:
    """The import worker of this module, running for all its tests."""
    importer = pipe.container.zip_importer
    running = Running(runner(pipe, groups(), ImportWorker(importer)))
    yield running
    running.finish()


def publish(pipe: Pipe, position: int) -> None:
    """Publish the catalog event at ``position`` (an import's request) to the module's topic,
    as the relay would."""
    app = pipe.container.applications.catalog
    (notification,) = app.recorder.select_notifications(position, 1)
    event = env.to_envelope("catalog", notification.id, app.mapper.to_domain_event(notification))
    assert event.type == "IconImport.ImportRequested"
    sent = pipe.producer.send(
        pipe.topic, value=env.encode(event), key=env.key(event), headers=env.headers(event)
    )
    sent.get(timeout=10)


def processed(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
    import_id: str,
    timeout_s: float = 90,
) -> dict[str, Any]:
    """The import once the worker has processed it (waiting on its status, never sleeping)."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(client.get(f"/v1/imports/{import_id}", headers=headers).json())
        return seen.get("status") != "pending"

    assert eventually(done, timeout_s, interval_s=0.1), f"still pending: {seen}"
    return seen


def set_icons(container: Container, set_id: str) -> list[UUID]:
    """The set's icons, from the event store."""
    icon_set: Any = container.applications.catalog.repository.get(UUID(set_id))
    assert isinstance(icon_set, IconSet)
    return list(icon_set.member_icon_ids)


@pytest.fixture
def owner(media_container: Container) -> dict[str, str]:
    return auth(media_container, f"contrib-{uuid.uuid4().hex[:8]}", "contributor")


def new_set(client: TestClient, headers: dict[str, str]) -> str:  # type: ignore[type-arg]
    family = client.post("/v1/families", json={"name": "Batch"}, headers=headers).json()
    icon_set = client.post(
        f"/v1/families/{family['id']}/sets", json={"name": "S", "style": "line"}, headers=headers
    ).json()
    return str(icon_set["id"])


def traced(headers: dict[str, str]) -> tuple[dict[str, str], str]:
    correlation = f"zip-{uuid.uuid4().hex}"
    return {**headers, "X-Correlation-ID": correlation}, correlation


def request(
    client: TestClient,  # type: ignore[type-arg]
    set_id: str,
    raw: bytes,
    headers: dict[str, str],
) -> Any:
    return client.post(
        f"/v1/sets/{set_id}/imports",
        content=raw,
        headers={**headers, "Content-Type": "application/zip"},
    )


@pytest.mark.usefixtures("worker")
def test_a_batch_answers_202_pending_creates_nothing_then_the_worker_reports_it(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
    pipe: Pipe,
) -> None:
    set_id = new_set(client, owner)
    files = {
        "a.svg": svg(1),
        "icons/b.svg": svg(2),
        "c.svg": svg(3),
        "evil.svg": (CORPUS / "script.svg").read_bytes(),
    }
    icons = [
        entry("a.svg", "Alpha", tags=["arrow"], categories=["ui"], licence="extended"),
        entry("icons/b.svg", "Beta", style="line"),
        entry("evil.svg", "Evil"),
        entry("c.svg", "Gamma"),
    ]
    raw = batch(files, icons)
    key = uuid.uuid4().hex
    apps = media_container.applications
    bucket = media_container.private_store.bucket
    heads = log_heads(apps)
    originals = object_keys(media_container.s3, bucket, "originals/")
    headers, correlation = traced({**owner, "Idempotency-Key": key})

    response = request(client, set_id, raw, headers)

    assert response.status_code == 202, response.text
    import_id = import_id_for(uuid.UUID(set_id), hashlib.sha256(raw).hexdigest(), key)
    accepted = response.json()
    assert accepted == {
        "id": str(import_id),
        "set_id": set_id,
        "status": "pending",
        "zip_hash": hashlib.sha256(raw).hexdigest(),
        "size_bytes": len(raw),
        "version": 1,
        "position": accepted["position"],
    }
    assert response.headers["location"] == f"/v1/imports/{import_id}"
    assert response.headers["idempotent-replayed"] == "false"
    # Nothing is created in the request: only the request is recorded and the zip staged.
    appended = appended_since(apps, heads, correlation)
    assert [(e.name, e.originator_id, e.position) for e in appended] == [
        ("IconImport.ImportRequested", import_id, accepted["position"])
    ]
    assert set_icons(media_container, set_id) == []
    assert object_keys(media_container.s3, bucket, "originals/") == originals
    staged = staged_zip_key(import_id)
    assert media_container.private_store.get_bytes(staged) == raw
    pending = client.get(f"/v1/imports/{import_id}", headers=owner)
    assert pending.status_code == 200
    assert {k: v for k, v in pending.json().items() if k != "position"} == {
        "id": str(import_id),
        "set_id": set_id,
        "zip_hash": accepted["zip_hash"],
        "version": 1,
        "status": "pending",
        "created": [],
        "rejected": [],
        "render_refused": [],
        "refusal": None,
    }

    publish(pipe, accepted["position"])
    report = processed(client, owner, str(import_id))

    assert report["status"] == "done"
    assert report["refusal"] is None
    assert report["version"] == 2
    assert [item["file"] for item in report["created"]] == ["a.svg", "icons/b.svg", "c.svg"]
    assert [(r["file"], r["code"]) for r in report["rejected"]] == [("evil.svg", "svg_script")]
    created = [uuid.UUID(item["icon_id"]) for item in report["created"]]
    assert sorted(set_icons(media_container, set_id)) == sorted(created)
    appended = appended_since(apps, heads, correlation)
    assert sorted((e.name, e.originator_id) for e in appended) == sorted(
        [("Icon.Created", icon_id) for icon_id in created]
        + [("IconSet.IconAdded", uuid.UUID(set_id)) for _ in created]
        + [("Icon.OriginalRecorded", icon_id) for icon_id in created]
        + [("IconImport.ImportRequested", import_id), ("IconImport.ImportCompleted", import_id)]
    )
    first: Any = apps.catalog.repository.get(created[0])
    assert isinstance(first, Icon)
    assert (first.name, first.tags, first.categories, first.licence.value) == (
        "Alpha",
        ("arrow",),
        ("ui",),
        "extended",
    )
    assert first.owner_id == owner_id(media_container, owner)
    assert (first.price.amount_minor, first.price.currency) == (250, "USD")
    stored = sanitise_svg(svg(1))
    assert first.original is not None
    assert first.original.content_hash == stored.content_hash
    assert media_container.private_store.get_bytes(stored.key) == stored.data
    assert {f"originals/{sanitise_svg(svg(n)).content_hash}.svg" for n in (1, 2, 3)} <= object_keys(
        media_container.s3, bucket, "originals/"
    )
    assert not media_container.private_store.exists(staged)  # deleted once processed

    # A re-sent zip (same bytes, same key): the first answer, nothing stored or appended.
    keys = object_keys(media_container.s3, bucket)
    again_headers, again_correlation = traced({**owner, "Idempotency-Key": key})
    heads_again = log_heads(apps)
    again = request(client, set_id, raw, again_headers)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == f"/v1/imports/{import_id}"
    assert again.json() == accepted
    assert appended_since(apps, heads_again, again_correlation, watched={import_id, *created}) == []
    assert object_keys(media_container.s3, bucket) == keys


def owner_id(container: Container, headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    return str(container.tokens.verify(token).id)


@pytest.mark.usefixtures("worker")
def test_a_multipart_batch_reports_missing_unlisted_and_style_mismatches(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
    pipe: Pipe,
) -> None:
    set_id = new_set(client, owner)
    raw = batch(
        {"a.svg": svg(4), "stray.svg": svg(5), "s.svg": svg(6), "eur.svg": svg(7)},
        [
            entry("a.svg", "Alpha"),
            entry("gone.svg", "Gone"),
            entry("s.svg", "Solid", style="solid"),
            entry("eur.svg", "Blank tag", tags=["   "]),
        ],
    )
    response = client.post(
        f"/v1/sets/{set_id}/imports", files={"file": ("batch.zip", raw)}, headers=owner
    )
    assert response.status_code == 202, response.text
    publish(pipe, response.json()["position"])
    body = processed(client, owner, response.json()["id"])
    assert body["status"] == "done"
    assert [item["file"] for item in body["created"]] == ["a.svg"]
    assert [(item["file"], item["code"]) for item in body["rejected"]] == [
        ("stray.svg", "import_file_unlisted"),
        ("gone.svg", "import_file_missing"),
        ("s.svg", "import_style_mismatch"),
        ("eur.svg", "invalid_label"),
    ]


def test_only_the_sets_owner_may_import_or_read_an_import(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    set_id = new_set(client, owner)
    raw = batch({"a.svg": svg(8)}, [entry("a.svg", "Alpha")])
    stranger = auth(media_container, f"other-{uuid.uuid4().hex[:8]}", "contributor")
    apps = media_container.applications
    heads = log_heads(apps)
    keys = object_keys(media_container.s3, media_container.private_store.bucket)
    headers, correlation = traced(stranger)

    refused = request(client, set_id, raw, headers)

    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert appended_since(apps, heads, correlation) == []
    assert object_keys(media_container.s3, media_container.private_store.bucket) == keys
    mine = request(client, set_id, raw, owner)
    assert mine.status_code == 202
    theirs = client.get(f"/v1/imports/{mine.json()['id']}", headers=stranger)
    assert (theirs.status_code, theirs.json()["code"]) == (403, "forbidden")
    unknown = client.get(f"/v1/imports/{uuid.uuid4()}", headers=owner)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


def test_the_manifest_schema_is_served(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/v1/schemas/import-manifest.json")
    assert response.status_code == 200
    assert response.json()["$id"] == "https://iconmarket.dev/schemas/import-manifest.json"


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("row", ZIP_ROWS, ids=[row["file"] for row in ZIP_ROWS])
def test_every_malicious_zip_is_an_import_refused_whole_and_creates_nothing(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
    pipe: Pipe,
    row: dict[str, Any],
) -> None:
    set_id = new_set(client, owner)
    apps = media_container.applications
    heads = log_heads(apps)
    bucket = media_container.private_store.bucket
    keys = object_keys(media_container.s3, bucket)
    headers, correlation = traced(owner)

    response = request(client, set_id, (CORPUS / row["file"]).read_bytes(), headers)

    assert response.status_code == 202, response.text
    import_id = response.json()["id"]
    publish(pipe, response.json()["position"])
    report = processed(client, owner, import_id)
    assert report["status"] == "refused"
    assert report["refusal"]["code"] == row["code"]
    assert (report["created"], report["rejected"]) == ([], [])
    assert [(e.name, str(e.originator_id)) for e in appended_since(apps, heads, correlation)] == [
        ("IconImport.ImportRequested", import_id),
        ("IconImport.ImportRefused", import_id),
    ]
    assert set_icons(media_container, set_id) == []
    assert object_keys(media_container.s3, bucket) == keys  # the staged zip is deleted too


def test_a_strangers_zip_is_refused_before_it_is_read_and_an_oversized_one_from_its_length(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    set_id = new_set(client, owner)
    limit = media_container.settings.zip_max_bytes
    stranger = auth(media_container, f"other-{uuid.uuid4().hex[:8]}", "contributor")
    oversized = b"\0" * (limit + 1)
    apps = media_container.applications
    heads = log_heads(apps)
    bucket = media_container.private_store.bucket
    keys = object_keys(media_container.s3, bucket)
    mine_headers, correlation = traced(owner)

    theirs = request(client, set_id, oversized, stranger)
    mine = request(client, set_id, oversized, mine_headers)

    assert (theirs.status_code, theirs.json()["code"]) == (403, "forbidden")
    assert (mine.status_code, mine.json()["code"]) == (422, "zip_too_large")
    assert mine.json()["detail"] == f"the upload is larger than {limit} bytes"
    assert appended_since(apps, heads, correlation) == []
    assert object_keys(media_container.s3, bucket) == keys


class Crash(BaseException):
    """The worker process dies here (not an Exception: nothing in the runner handles it)."""


@dataclass
class CrashingBus:
    """The real bus, dying once ``after`` icons have been created through it."""

    inner: CommandBus
    after: int
    creates: int = 0
    lock: Any = field(default_factory=lambda: __import__("threading").Lock())

    def execute(self, command: object, ctx: CommandContext) -> CommandResult:
        if isinstance(command, m.CreateIcon):
            with self.lock:
                self.creates += 1
                dying = self.creates > self.after
            if dying:
                raise Crash(f"killed after {self.after} icons")
        return self.inner.execute(command, ctx)


def test_a_worker_killed_mid_batch_is_restarted_and_creates_each_icon_exactly_once(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
    own: Pipe,
    groups: Callable[[], str],
) -> None:
    set_id = new_set(client, owner)
    names = [f"icon {n}" for n in range(12)]
    raw = batch(
        {f"{n}.svg": svg(20 + n) for n in range(12)},
        [entry(f"{n}.svg", name) for n, name in enumerate(names)],
    )
    apps = media_container.applications
    heads = log_heads(apps)
    headers, correlation = traced(owner)
    response = request(client, set_id, raw, headers)
    assert response.status_code == 202
    import_id = response.json()["id"]
    publish(own, response.json()["position"])
    importer = media_container.zip_importer
    dying_bus = CrashingBus(media_container.bus, after=5)
    dying = ZipImporter(
        SvgIngestion(apps, dying_bus, importer.ingestion.store, importer.ingestion.limits),  # type: ignore[arg-type]
        importer.limits,
    )
    group = groups()

    first = Running(runner(own, group, ImportWorker(dying)))
    assert eventually(lambda: first.error is not None, 90), "the worker did not die"
    first.thread.join(timeout=30)
    assert isinstance(first.error, Crash)

    half = appended_since(apps, heads, correlation)
    assert 1 <= sum(e.name == "Icon.Created" for e in half) <= 5 + 7  # some created, not all
    assert "IconImport.ImportCompleted" not in {e.name for e in half}
    midway = client.get(f"/v1/imports/{import_id}", headers=owner).json()
    assert midway["status"] == "pending", (
        midway,
        object_keys(media_container.s3, media_container.private_store.bucket, "imports/"),
    )
    assert media_container.private_store.exists(staged_zip_key(UUID(import_id)))

    second = Running(runner(own, group, ImportWorker(importer)))
    try:
        report = processed(client, owner, import_id)
    finally:
        second.finish()

    assert report["status"] == "done"
    assert sorted(item["file"] for item in report["created"]) == sorted(
        f"{n}.svg" for n in range(12)
    )
    appended = appended_since(apps, heads, correlation)
    created = [e.originator_id for e in appended if e.name == "Icon.Created"]
    assert len(created) == len(set(created)) == 12
    assert sorted(created) == sorted(UUID(item["icon_id"]) for item in report["created"])
    assert sum(e.name == "Icon.OriginalRecorded" for e in appended) == 12
    assert sum(e.name == "IconSet.IconAdded" for e in appended) == 12
    assert sum(e.name == "IconImport.ImportCompleted" for e in appended) == 1
    assert sorted(set_icons(media_container, set_id)) == sorted(created)
    assert parked_rows(media_container.settings, group) == []


@dataclass
class FlakyStore:
    """The real store, whose reads fail as if S3 were unreachable for the first ``outage``."""

    inner: ObjectStore
    outage: int
    failed: int = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        if self.failed < self.outage:
            self.failed += 1
            raise EndpointConnectionError(endpoint_url="http://s3.down.invalid")
        return self.inner.get_bytes(key, max_bytes=max_bytes)


def test_an_s3_outage_is_waited_out_never_dead_lettered(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
    own: Pipe,
    groups: Callable[[], str],
) -> None:
    set_id = new_set(client, owner)
    raw = batch({"a.svg": svg(40)}, [entry("a.svg", "Alpha")])
    response = request(client, set_id, raw, owner)
    assert response.status_code == 202
    publish(own, response.json()["position"])
    importer = media_container.zip_importer
    flaky = FlakyStore(importer.ingestion.store, outage=6)  # past max_attempts (2) many times
    ingestion = dataclasses.replace(importer.ingestion, store=flaky)
    group = groups()

    running = Running(
        runner(
            own,
            group,
            ImportWorker(dataclasses.replace(importer, ingestion=ingestion)),
            max_attempts=2,
        )
    )
    try:
        report = processed(client, owner, response.json()["id"])
    finally:
        running.finish()

    assert flaky.failed == 6
    assert report["status"] == "done"
    assert [item["file"] for item in report["created"]] == ["a.svg"]
    assert parked_rows(media_container.settings, group) == []
