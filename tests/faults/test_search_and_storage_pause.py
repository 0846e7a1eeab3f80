"""Faults: OpenSearch frozen (SIGSTOP, 15 s) while the catalog projection is applying a load, and
S3 (MinIO) frozen 15 s while the media worker renders uploads.

Each case runs the write path on an event store of its own: commands → relay → a scratch topic →
the catalog projection (into an index of its own) and the media worker (into buckets of its own),
both on the consumer runner with the PostgreSQL parking lot. Nothing may be parked or
dead-lettered; afterwards the view equals a replay of the whole log into a shadow index (no
document differs), and every derivative expected is in the bucket, and nothing else. With the
failure classification reverted, the timeouts count as poison attempts and park the events."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from commands import messages as m
from domain.icon import Icon
from infra.audit.diff import ProjectionDiff, compare, documents
from infra.bootstrap import Container
from infra.rebuild import head, replay
from infra.settings import Settings
from infra.targets import CatalogTarget
from pipelines.derivatives import MediaStores
from pipelines.media_worker import MediaWorker
from pipelines.object_store import S3ObjectStore
from pipelines.render import RENDERER_VERSION, content_hash, outputs
from stream.consumer import Backoff, ConsumerRunner, Delivery
from stream.dlq import read_dead_letters
from stream.relay import Relay
from tests.faults.harness import end_offsets, paused, relaying, sample, scratch_container
from tests.integration.test_media_worker import unique_svg
from tests.support import (
    Running,
    create_scratch_bucket,
    ctx,
    drop_scratch_bucket,
    eventually,
    object_keys,
    parked_rows,
    published_catalog,
    scratch_topic,
    wait_for_saved_position,
)

pytestmark = pytest.mark.integration

PAUSE_S = 15.0
FAST = Backoff(initial_s=0.05, factor=2.0, max_s=0.5)
# Few attempts, so that classifying the outage as poison would park within the pause.
IMPATIENT = {"max_attempts": 2, "batch_attempts": 1, "backoff": FAST, "poll_timeout_s": 0.2}
FAMILIES_BEFORE, FAMILIES_IN_PAUSE = 2, 10
PRICES = (100, 0, 250)  # one icon per price in each family
ICONS_BEFORE, ICONS_IN_PAUSE = 2, 8


@dataclass
class Pipeline:
    """A scratch event store relayed to a scratch topic, projected into a catalog index of its
    own by a runner of the test's group."""

    store: Container
    topic: str
    target: CatalogTarget
    view: str
    projection: ConsumerRunner

    def caught_up(self, runners: Sequence[ConsumerRunner], timeout_s: float = 60) -> None:
        """Wait until the relay published the whole log and ``runners`` committed all of it."""
        last = head(self.store, "catalog")
        saved = wait_for_saved_position(self.store.settings, self.topic, last, timeout_s)
        assert saved >= last, f"the relay reached {saved} of {last}"
        ends = end_offsets(self.store.settings, self.topic)
        for runner in runners:
            assert runner.wait_until_committed(ends, timeout_s), (runner.committed(), ends)

    def diff_with_a_replay(self) -> ProjectionDiff:
        """The view against the whole log replayed into a new shadow index (then dropped)."""
        until = {"catalog": head(self.store, "catalog")}
        shadow = f"faults-replay-{uuid.uuid4().hex[:10]}"
        result = replay(self.store, ["catalog"], self.target, shadow, until)
        try:
            return compare(
                "catalog",
                self.view,
                result.new_target,
                documents(self.store, "catalog", self.view),
                documents(self.store, "catalog", result.new_target),
            )
        finally:
            self.target.drop(result.new_target)


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    with (
        scratch_container(settings, "iconmarket_faults") as store,
        scratch_topic(store, "test.faults.catalog", 3) as topic,
    ):
        target = CatalogTarget(store.opensearch, store.redis)
        view = target.shadow(f"faults-view-{uuid.uuid4().hex[:10]}")

        def project(deliveries: Sequence[Delivery], /) -> None:
            events = [delivery.event for delivery in deliveries]
            target.apply(view, events)
            target.settle(view)

        group = f"test-faults-catalog-{uuid.uuid4().hex[:10]}"
        runner = ConsumerRunner(
            store.settings, group_id=group, topics=[topic], handler=project, **IMPATIENT
        )
        relay = Relay(
            store.applications.catalog,
            store.settings,
            topic=topic,
            log_name=topic,
            idle_wait_s=0.2,
        )
        running = Running(runner)
        try:
            with relaying(relay):
                yield Pipeline(store, topic, target, view, runner)
        finally:
            running.finish()
            target.drop(view)
            _delete_groups(store, [group])


def _delete_groups(store: Container, groups: list[str]) -> None:
    admin = store.kafka_admin()
    with contextlib.suppress(Exception):
        admin.delete_groups(groups)
    admin.close()


def _untouched(pipeline: Pipeline, runners: Sequence[ConsumerRunner]) -> None:
    """Nothing parked or dead-lettered by any of ``runners``, and the outage was met."""
    settings = pipeline.store.settings
    for runner in runners:
        group = runner.group_id
        assert parked_rows(settings, group) == [], group
        assert (
            sample("iconmarket_consumer_dead_lettered_total", group=group, topic=pipeline.topic)
            == 0
        )
    letters = read_dead_letters(settings, pipeline.topic, timeout_s=15)
    assert letters.complete
    assert letters.letters == []


def _transient(runner: ConsumerRunner) -> float:
    return sample(
        "iconmarket_consumer_transient_failures_total", group=runner.group_id, doing="handle"
    )


def test_a_frozen_opensearch_is_waited_for_and_the_view_equals_a_replay(
    settings: Settings, pipeline: Pipeline
) -> None:
    bus = pipeline.store.bus
    owner = f"faults-search-{uuid.uuid4().hex[:6]}"
    for _ in range(FAMILIES_BEFORE):
        published_catalog(bus, owner, prices=PRICES)
    pipeline.caught_up([pipeline.projection])
    docs_per_family = 2 + len(PRICES)  # the family, its set, its icons

    with paused(settings, "opensearch") as pause:
        for _ in range(FAMILIES_IN_PAUSE):  # relayed and consumed while OpenSearch cannot answer
            published_catalog(bus, owner, prices=PRICES)
        pause.hold(PAUSE_S)
    pipeline.caught_up([pipeline.projection])

    _untouched(pipeline, [pipeline.projection])
    assert _transient(pipeline.projection) >= 1  # the outage was really met
    diff = pipeline.diff_with_a_replay()
    families = FAMILIES_BEFORE + FAMILIES_IN_PAUSE
    assert (diff.left_count, diff.right_count) == (families * docs_per_family,) * 2
    assert (diff.only_left, diff.only_right, diff.changed) == ([], [], {})
    statuses = {
        doc.get("status")
        for doc in documents(pipeline.store, "catalog", pipeline.view).values()
        if doc["kind"] == "icon"
    }
    assert statuses == {"published"}
    print(
        f"opensearch pause={PAUSE_S}s events={head(pipeline.store, 'catalog')} "
        f"documents={diff.left_count} differences={diff.differences} "
        f"transient_failures={_transient(pipeline.projection)}"
    )


def _impatient_s3(settings: Settings) -> Any:
    """An S3 client that gives up on a stalled request after 2 s, without retrying it itself.

    The app's client (10 s reads, retried twice) alone outlasts a 15 s freeze, which would then
    never reach the worker's failure handling."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=2,
            retries={"mode": "standard", "total_max_attempts": 1},
        ),
    )


@dataclass(frozen=True)
class Upload:
    icon_id: UUID
    digest: str
    size: int


def _recorded(store: Container, icon_id: UUID) -> int:
    events = store.applications.catalog.repository.event_store.get(icon_id)
    return sum(1 for event in events if isinstance(event, Icon.DerivativesRecorded))


def test_a_frozen_s3_is_waited_for_and_every_derivative_is_stored_once(
    settings: Settings, container: Container, pipeline: Pipeline
) -> None:
    store = pipeline.store
    private = create_scratch_bucket(container.s3, "iconmarket-faults")
    public = create_scratch_bucket(container.s3, "iconmarket-faults")
    impatient = _impatient_s3(settings)
    worker = MediaWorker(
        store.bus, MediaStores(S3ObjectStore(impatient, private), S3ObjectStore(impatient, public))
    )
    group = f"test-faults-media-{uuid.uuid4().hex[:10]}"
    media = ConsumerRunner(
        store.settings,
        group_id=group,
        topics=[pipeline.topic],
        handler=worker,
        batch_size=2,
        **IMPATIENT,
    )
    owner = ctx(f"faults-media-{uuid.uuid4().hex[:6]}", "contributor")
    family_id = store.bus.execute(m.CreateFamily(name="Faults"), owner).aggregate_id
    set_id = store.bus.execute(
        m.CreateIconSet(family_id=family_id, name="Faults Line", style="line"), owner
    ).aggregate_id
    uploads = []
    for n in range(ICONS_BEFORE + ICONS_IN_PAUSE):
        svg = unique_svg()
        icon_id = store.bus.execute(
            m.CreateIcon(
                set_id=set_id, name=f"fault {n}", price=m.Money(amount_minor=0, currency="USD")
            ),
            owner,
        ).aggregate_id
        digest = content_hash(svg)
        container.s3.put_object(Bucket=private, Key=f"originals/{digest}.svg", Body=svg)
        uploads.append(Upload(icon_id, digest, len(svg)))

    def record(upload: Upload) -> None:
        original = m.SvgOriginal(
            key=f"originals/{upload.digest}.svg",
            content_hash=upload.digest,
            size_bytes=upload.size,
            width=24,
            height=24,
        )
        store.bus.execute(m.RecordOriginal(icon_id=upload.icon_id, original=original), owner)

    running = Running(media)
    try:
        for upload in uploads[:ICONS_BEFORE]:
            record(upload)
        assert eventually(
            lambda: all(_recorded(store, u.icon_id) for u in uploads[:ICONS_BEFORE]), 60
        )
        with paused(settings, "s3") as pause:
            for upload in uploads[ICONS_BEFORE:]:  # rendered while S3 cannot answer
                record(upload)
            pause.hold(PAUSE_S)
        rendered = eventually(lambda: all(_recorded(store, u.icon_id) for u in uploads), 60)
        pipeline.caught_up([pipeline.projection, media])
    finally:
        running.finish()
        _delete_groups(store, [group])

    try:
        derivatives = object_keys(container.s3, private, "derivatives/")
        previews = object_keys(container.s3, public)
    finally:
        drop_scratch_bucket(container.s3, private)
        drop_scratch_bucket(container.s3, public)
    _untouched(pipeline, [pipeline.projection, media])
    assert rendered, [_recorded(store, u.icon_id) for u in uploads]
    expected = {o.key(u.digest, RENDERER_VERSION): o.public for u in uploads for o in outputs()}
    assert derivatives == {key for key, public in expected.items() if not public}
    assert previews == {key for key, public in expected.items() if public}
    assert [_recorded(store, u.icon_id) for u in uploads] == [1] * len(uploads)
    assert _transient(media) >= 1  # the outage was really met
    diff = pipeline.diff_with_a_replay()
    assert (diff.left_count, diff.right_count) == (2 + len(uploads),) * 2
    assert (diff.only_left, diff.only_right, diff.changed) == ([], [], {})
    view = documents(store, "catalog", pipeline.view)
    formats = {doc_id: doc["formats"] for doc_id, doc in view.items() if doc["kind"] == "icon"}
    assert formats == {f"icon:{u.icon_id}": ["pdf", "png", "svg", "webp"] for u in uploads}
    print(
        f"s3 pause={PAUSE_S}s icons={len(uploads)} derivatives={len(derivatives)} "
        f"previews={len(previews)} documents={diff.left_count} "
        f"differences={diff.differences} transient_failures={_transient(media)}"
    )
