"""The media workers on real Kafka, MinIO and PostgreSQL: an upload event → every derivative key
in S3 → DerivativesRecorded with lineage; a redelivery renders, writes and appends nothing; an
unrenderable original is retried, then dead-lettered with the icon id; set and family previews
are composed once their icons' derivatives exist."""

from __future__ import annotations

import contextlib
import functools
import io
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from kafka import KafkaProducer
from PIL import Image

from commands import messages as m
from domain.family import Family
from domain.icon import Icon
from domain.icon_set import IconSet
from infra.bootstrap import Container, media_stores
from pipelines.derivatives import MediaStores, refusal_key
from pipelines.media_worker import MediaWorker
from pipelines.object_store import ObjectStore, PresignedPost
from pipelines.previews import Member, PreviewComposer, member_hash, preview_key
from pipelines.render import RENDERER_VERSION, content_hash, outputs
from pipelines.render_pool import RenderPool
from pipelines.rerender import Selection, current_originals, rerender
from pipelines.svg_policy import SvgLimits, sanitise_svg
from stream import envelope as env
from stream.consumer import Backoff, ConsumerRunner, Delivery
from tests.support import appended_since, ctx, log_heads, parked_rows, scratch_topic

pytestmark = pytest.mark.integration

FAST = Backoff(initial_s=0.01, factor=2.0, max_s=0.04)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OWNER = ctx(f"media-owner-{uuid.uuid4().hex[:6]}", "contributor")


def unique_svg(colour: str = "#1f2937") -> bytes:
    """A small icon whose bytes (so content hash and keys) are new on every call."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24">'
        f"<!-- {uuid.uuid4().hex} -->"
        f'<path d="M4 12h16M14 6l6 6-6 6" stroke="{colour}" stroke-width="2" fill="none"/>'
        f'<circle cx="12" cy="12" r="4" fill="{colour}" opacity="0.5"/></svg>'
    ).encode()


@dataclass
class CountingStore:
    """The real S3 store, counting what is written through it."""

    inner: ObjectStore
    puts: list[str] = field(default_factory=list)

    @property
    def bucket(self) -> str:
        return self.inner.bucket

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        self.puts.append(key)
        self.inner.put_bytes(key, data, content_type=content_type)

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        return self.inner.get_bytes(key, max_bytes=max_bytes)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def presigned_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        return self.inner.presigned_get(key, expires_s=expires_s, filename=filename)

    def presigned_post(
        self, key: str, *, expires_s: int, content_type: str, max_bytes: int
    ) -> PresignedPost:
        return self.inner.presigned_post(
            key, expires_s=expires_s, content_type=content_type, max_bytes=max_bytes
        )

    def keys_older_than(self, prefix: str, age_s: float) -> list[str]:
        return self.inner.keys_older_than(prefix, age_s)


@pytest.fixture
def topic(container: Container) -> Iterator[str]:
    with scratch_topic(container, "test.media", 1) as name:
        yield name


@pytest.fixture
def producer(container: Container) -> Iterator[KafkaProducer]:
    made = KafkaProducer(bootstrap_servers=container.settings.kafka_bootstrap, acks="all")
    yield made
    made.close()


@pytest.fixture
def groups(container: Container) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def new() -> str:
        made.append(f"test-media-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield new
    admin = container.kafka_admin()
    with contextlib.suppress(Exception):
        admin.delete_groups(made)
    admin.close()


@dataclass(frozen=True)
class Shelf:
    family_id: UUID
    set_id: UUID


SINCE = 0


@pytest.fixture
def shelf(container: Container) -> Shelf:
    global SINCE  # noqa: PLW0603 - where this test's events start in the shared log
    SINCE = container.applications.catalog.recorder.max_notification_id() or 0
    bus = container.bus
    family_id = bus.execute(m.CreateFamily(name="Media Test"), OWNER).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="Media Line", style="line"), OWNER
    ).aggregate_id
    return Shelf(family_id, set_id)


def new_icon(container: Container, shelf: Shelf, svg: bytes) -> tuple[UUID, str]:
    """An icon whose sanitised original is in the private bucket and recorded; returns its id
    and the content hash."""
    bus = container.bus
    icon_id = bus.execute(
        m.CreateIcon(
            set_id=shelf.set_id, name="media arrow", price=m.Money(amount_minor=0, currency="USD")
        ),
        OWNER,
    ).aggregate_id
    digest = content_hash(svg)
    key = f"originals/{digest}.svg"
    container.private_store.put_bytes(key, svg, content_type="image/svg+xml")
    original = m.SvgOriginal(key=key, content_hash=digest, size_bytes=len(svg), width=24, height=24)
    bus.execute(m.RecordOriginal(icon_id=icon_id, original=original), OWNER)
    return icon_id, digest


def envelopes_of(container: Container, aggregate_id: UUID, types: set[str]) -> list[env.Envelope]:
    """The aggregate's events of ``types`` as the relay publishes them (with their positions)."""
    app = container.applications.catalog
    found = []
    start = SINCE + 1
    while True:
        page = app.recorder.select_notifications(start, 1_000)
        for notification in page:
            if notification.originator_id != aggregate_id:
                continue
            event = app.mapper.to_domain_event(notification)
            if type(event).__qualname__ in types:
                found.append(env.to_envelope("catalog", notification.id, event))
        if len(page) < 1_000:
            return found
        start = page[-1].id + 1


def produce(
    producer: KafkaProducer, topic: str, envelopes: Sequence[env.Envelope]
) -> dict[Any, int]:
    futures = [
        producer.send(topic, value=env.encode(e), key=env.key(e), headers=env.headers(e))
        for e in envelopes
    ]
    producer.flush()
    targets: dict[Any, int] = {}
    for future in futures:
        meta = future.get(timeout=10)
        targets[(meta.topic, meta.partition)] = max(
            targets.get((meta.topic, meta.partition), 0), meta.offset + 1
        )
    return targets


def run_until_committed(runner: ConsumerRunner, targets: dict[Any, int]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            runner.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        reached = runner.wait_until_committed(targets, 120)
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert not errors, errors
    assert reached, f"committed {runner.committed()}, expected {targets}"


def _runner(container: Container, group: str, topic: str, handler: Any) -> ConsumerRunner:
    return ConsumerRunner(
        container.settings,
        group_id=group,
        topics=[topic],
        handler=handler,
        backoff=FAST,
        poll_timeout_s=0.2,
        max_attempts=3,
    )


def _stores(container: Container) -> tuple[MediaStores, CountingStore, CountingStore]:
    private = CountingStore(container.private_store)
    public = CountingStore(container.public_store)
    return MediaStores(private, public), private, public


def _version() -> str:
    """A renderer version of this test alone: a media worker of a concurrently running app
    (sharing the store and the object store) renders other keys and records other events."""
    return f"test-{uuid.uuid4().hex[:10]}"


def recorded_with(
    container: Container, icon_id: UUID, version: str
) -> list[Icon.DerivativesRecorded]:
    events = container.applications.catalog.repository.event_store.get(icon_id)
    return [
        e
        for e in events
        if isinstance(e, Icon.DerivativesRecorded) and e.renderer_version == version
    ]


def test_an_upload_event_renders_every_key_and_records_lineage_and_a_redelivery_does_nothing(
    container: Container,
    shelf: Shelf,
    topic: str,
    producer: KafkaProducer,
    groups: Callable[[], str],
) -> None:
    svg = unique_svg()
    icon_id, digest = new_icon(container, shelf, svg)
    (uploaded,) = envelopes_of(container, icon_id, {"Icon.OriginalRecorded"})
    stores, private, public = _stores(container)
    version = _version()
    worker = MediaWorker(container.bus, stores, renderer_version=version)

    run_until_committed(
        _runner(container, groups(), topic, worker), produce(producer, topic, [uploaded])
    )

    keys = {output.key(digest, version) for output in outputs()}
    preview = f"derivatives/{digest}/{version}/preview-128.png"
    assert sorted(private.puts + public.puts) == sorted(keys)
    assert public.puts == [preview]
    for key in private.puts:
        assert container.private_store.exists(key)
    assert container.public_store.exists(preview)
    (event,) = recorded_with(container, icon_id, version)
    assert event.correlation_id == uploaded.correlation_id
    assert event.actor == "service:media"
    assert (event.source_hash, event.preview_key) == (digest, preview)
    assert event.parameters == {
        "base_size": 64,
        "scales": "1,2,3,4",
        "webp_size": 256,
        "webp_quality": 90,
        "webp_method": 4,
        "pdf_size": 64,
        "preview_size": 128,
        "watermark": "iconmarket",
    }
    assert sorted((item["kind"], item["size"], item["key"]) for item in event.items) == sorted(
        (o.kind, o.size, o.key(digest, version)) for o in outputs() if o.kind != "preview"
    )
    for item in event.items:
        assert item["size_bytes"] == len(container.private_store.get_bytes(item["key"]))
    png = container.private_store.get_bytes(f"derivatives/{digest}/{version}/png-192.png")
    assert Image.open(io.BytesIO(png)).size == (192, 192)

    # The same upload event again (a redelivery, e.g. after a crash before the commit).
    private.puts.clear()
    public.puts.clear()
    run_until_committed(
        _runner(container, groups(), topic, worker), produce(producer, topic, [uploaded])
    )
    assert (private.puts, public.puts) == ([], [])
    assert len(recorded_with(container, icon_id, version)) == 1


def _heavy_svg() -> bytes:
    """The costly fixture (refused by the cost model at upload), with new bytes each call: it
    needs tens of seconds of CPU to render."""
    raw = (FIXTURES / "malicious" / "heavy_path_use.svg").read_bytes()
    marked = raw.replace(b"<defs>", f"<!-- {uuid.uuid4().hex} --><defs>".encode(), 1)
    return sanitise_svg(marked, SvgLimits(max_render_cost=10**15)).data


def _refusals(container: Container, icon_id: UUID) -> list[Icon.RenderRefused]:
    events = container.applications.catalog.repository.event_store.get(icon_id)
    return [e for e in events if isinstance(e, Icon.RenderRefused)]


def test_an_unrenderable_original_is_quarantined_once_not_retried_nor_dead_lettered(
    container: Container,
    shelf: Shelf,
    topic: str,
    producer: KafkaProducer,
    groups: Callable[[], str],
) -> None:
    broken = f"<svg xmlns='http://www.w3.org/2000/svg'><!-- {uuid.uuid4().hex} --><g".encode()
    icon_id, digest = new_icon(container, shelf, broken)
    (uploaded,) = envelopes_of(container, icon_id, {"Icon.OriginalRecorded"})
    stores, private, public = _stores(container)
    calls: list[int] = []
    version = _version()
    worker = MediaWorker(container.bus, stores, renderer_version=version)

    def counting(deliveries: Sequence[Delivery]) -> None:
        calls.append(len(deliveries))
        worker(deliveries)

    heads = log_heads(container.applications)
    group = groups()
    targets = produce(producer, topic, [uploaded])
    run_until_committed(_runner(container, group, topic, counting), targets)

    assert calls == [1]  # no retry
    assert parked_rows(container.settings, group) == []  # nothing dead-lettered
    marker = refusal_key(digest, version)
    assert (private.puts, public.puts) == ([marker], [])
    (refused,) = _refusals(container, icon_id)
    assert refused.refusal["code"] == "render_failed"
    assert refused.refusal["detail"].startswith("unreadable SVG: ")
    assert (refused.refusal["source_hash"], refused.refusal["renderer_version"]) == (
        digest,
        version,
    )
    assert refused.actor == "service:media"
    assert [e.name for e in appended_since(container.applications, heads, "-", {icon_id})] == [
        "Icon.RenderRefused"
    ]

    # Redelivered: the marker says it is quarantined; nothing is rendered, written or appended.
    private.puts.clear()
    heads = log_heads(container.applications)
    run_until_committed(
        _runner(container, groups(), topic, counting), produce(producer, topic, [uploaded])
    )
    assert calls == [1, 2]  # a new group reads the topic from its start: the event twice
    assert (private.puts, public.puts) == ([], [])
    assert appended_since(container.applications, heads, "-", {icon_id}) == []


def test_a_render_past_its_cpu_deadline_is_quarantined_once_and_an_honest_icon_goes_on(
    container: Container,
    shelf: Shelf,
    topic: str,
    producer: KafkaProducer,
    groups: Callable[[], str],
) -> None:
    heavy_id, heavy_hash = new_icon(container, shelf, _heavy_svg())
    honest_id, _ = new_icon(container, shelf, unique_svg())
    uploads = [
        e
        for i in (heavy_id, honest_id)
        for e in envelopes_of(container, i, {"Icon.OriginalRecorded"})
    ]
    stores, private, _public = _stores(container)
    version = _version()
    calls: list[int] = []
    heads = log_heads(container.applications)
    group = groups()
    with RenderPool(2, deadline_s=0.5, name="test-media") as pool:
        worker = MediaWorker(container.bus, stores, renderer=pool, renderer_version=version)

        def counting(deliveries: Sequence[Delivery]) -> None:
            calls.append(len(deliveries))
            worker(deliveries)

        began = time.monotonic()
        run_until_committed(
            _runner(container, group, topic, counting), produce(producer, topic, uploads)
        )
        took = time.monotonic() - began

    assert sum(calls) == 2  # each event handled once: the timeout was not retried
    assert parked_rows(container.settings, group) == []
    (refused,) = _refusals(container, heavy_id)
    assert refused.refusal["code"] == "render_timeout"
    assert re.fullmatch(
        rf"the (png|pdf)-\d+.* pass of icon {heavy_id} used more than 0.5 s of CPU time",
        refused.refusal["detail"],
    )
    assert len(recorded_with(container, honest_id, version)) == 1
    assert recorded_with(container, heavy_id, version) == []
    heavy_keys = [key for key in private.puts if key.startswith(f"derivatives/{heavy_hash}/")]
    assert heavy_keys == [refusal_key(heavy_hash, version)]
    appended = appended_since(container.applications, heads, "-", {heavy_id, honest_id})
    assert sorted(e.name for e in appended) == ["Icon.DerivativesRecorded", "Icon.RenderRefused"]
    assert took < 30


def test_set_and_family_previews_are_composed_once_their_icons_have_derivatives(
    container: Container,
    shelf: Shelf,
    topic: str,
    producer: KafkaProducer,
    groups: Callable[[], str],
) -> None:
    icons = [new_icon(container, shelf, unique_svg(colour))[0] for colour in ("#111", "#c00")]
    stores, _, _ = _stores(container)
    worker = MediaWorker(container.bus, stores, renderer_version=_version())
    uploads = [e for i in icons for e in envelopes_of(container, i, {"Icon.OriginalRecorded"})]
    run_until_committed(
        _runner(container, groups(), topic, worker), produce(producer, topic, uploads)
    )
    wanted = {"Icon.Created", "Icon.DerivativesRecorded"}
    stream = sorted(
        (e for i in icons for e in envelopes_of(container, i, wanted)), key=lambda e: e.position
    )
    composer = PreviewComposer(container.bus, container.redis, container.public_store)

    run_until_committed(
        _runner(container, groups(), topic, composer), produce(producer, topic, stream)
    )

    icon_set = container.applications.catalog.repository.get(shelf.set_id)
    family = container.applications.catalog.repository.get(shelf.family_id)
    assert isinstance(icon_set, IconSet)
    assert isinstance(family, Family)
    members = tuple(sorted(icons, key=str))
    assert icon_set.preview_members == members
    assert family.preview_members == members
    chosen = list(_members(container, shelf.set_id))
    assert [UUID(member.icon_id) for member in chosen] == list(members)
    assert icon_set.preview_key == preview_key("set", str(shelf.set_id), member_hash(chosen))
    assert family.preview_key == preview_key("family", str(shelf.family_id), member_hash(chosen))
    grid = Image.open(io.BytesIO(container.public_store.get_bytes(icon_set.preview_key)))
    assert grid.size == (2 * 128 + 3 * 8, 128 + 2 * 8)
    assert container.redis.hget("media:previews:dirty", f"set:{shelf.set_id}") is None

    # Redelivered: the composed key exists and the same members are recorded, so nothing new.
    versions = (icon_set.version, family.version)
    public = CountingStore(container.public_store)
    again = PreviewComposer(container.bus, container.redis, public)
    run_until_committed(
        _runner(container, groups(), topic, again), produce(producer, topic, stream)
    )
    icon_set = container.applications.catalog.repository.get(shelf.set_id)
    family = container.applications.catalog.repository.get(shelf.family_id)
    assert (icon_set.version, family.version) == versions
    assert public.puts == []


def _members(container: Container, set_id: UUID) -> Iterator[Member]:
    raw = container.redis.hgetall(f"media:set:{set_id}:members")
    for icon_id in sorted(raw):
        yield Member(icon_id.decode(), raw[icon_id].decode())


def test_rerender_renders_on_processes_resumes_and_re_renders_after_a_version_bump(
    container: Container, shelf: Shelf
) -> None:
    good = [new_icon(container, shelf, unique_svg(c))[0] for c in ("#111", "#c00", "#0a0")]
    broken = f"<svg xmlns='http://www.w3.org/2000/svg'><!-- {uuid.uuid4().hex} --><g".encode()
    bad, _ = new_icon(container, shelf, broken)
    jobs = current_originals(container.applications.catalog, Selection(set_id=shelf.set_id))
    assert sorted(job.icon_id for job in jobs) == sorted([*good, bad])
    version = _version()
    seen: list[tuple[int, int]] = []

    first = rerender(
        functools.partial(media_stores, container.settings),
        container.bus,
        jobs,
        workers=2,
        renderer_version=version,
        progress=lambda label, done, total: seen.append((done, total)),
    )

    assert (first.selected, first.rendered, first.skipped, first.outputs_written) == (4, 3, 0, 21)
    assert list(first.failed) == [str(bad)]
    assert first.failed[str(bad)].startswith("RenderError: unreadable SVG")
    assert seen == [(n, 4) for n in range(1, 5)]
    for icon_id in good:
        (event,) = recorded_with(container, icon_id, version)
        assert event.actor == "service:media"
    again = rerender(
        functools.partial(media_stores, container.settings),
        container.bus,
        jobs,
        workers=2,
        renderer_version=version,
    )
    assert (again.rendered, again.skipped, again.outputs_written) == (0, 3, 0)
    assert all(len(recorded_with(container, i, version)) == 1 for i in good)
    bumped = _version()
    third = rerender(
        functools.partial(media_stores, container.settings),
        container.bus,
        jobs,
        workers=1,
        renderer_version=bumped,
    )
    assert (third.rendered, third.skipped, third.outputs_written) == (3, 0, 21)
    assert all(len(recorded_with(container, i, bumped)) == 1 for i in good)


def test_the_rerender_command_prints_its_summary(container: Container, shelf: Shelf) -> None:
    icon_id, digest = new_icon(container, shelf, unique_svg())
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", "media", "rerender", "--set", str(shelf.set_id)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("selected 1 icons in ")
    assert (
        lines[1]
        == "rendered 1 (outputs written: 7), skipped 0 (all outputs stored), stale 0, failed 0"
    )
    assert container.private_store.exists(f"derivatives/{digest}/{RENDERER_VERSION}/png-256.png")
    assert recorded_with(container, icon_id, RENDERER_VERSION)
