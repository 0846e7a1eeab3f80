"""The write model on the real PostgreSQL store: conflicts, idempotency, atomicity, batches."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from commands import messages as m
from commands.applications import Applications, build_applications
from commands.bus import CommandBus
from commands.errors import VersionConflict
from commands.routes import ROUTES
from domain.family import Family
from infra.settings import Settings
from tests.support import ctx


@pytest.fixture(scope="module")
def apps(settings: Settings) -> Iterator[Applications]:
    built = build_applications(settings)
    yield built
    built.close()


@pytest.fixture(params=[False, True], ids=["direct", "group-commit"])
def bus(apps: Applications, request: pytest.FixtureRequest) -> Iterator[CommandBus]:
    built = CommandBus(apps, ROUTES, group_commit=request.param)
    yield built
    built.close()


def _head(apps: Applications) -> int:
    return apps.catalog.recorder.max_notification_id() or 0


def _rows_of(settings: Settings, aggregate_id: uuid.UUID) -> list[tuple[int, int]]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT originator_version, notification_id FROM catalog_events "
            "WHERE originator_id = %s ORDER BY notification_id",
            (aggregate_id,),
        ).fetchall()
    return [(int(v), int(n)) for v, n in rows]


def test_one_table_per_bounded_context(settings: Settings, apps: Applications) -> None:
    with psycopg.connect(settings.postgres_dsn) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
    assert {
        "catalog_events",
        "commerce_events",
        "identity_events",
        "catalog_idempotency",
        "commerce_idempotency",
        "identity_idempotency",
    } <= tables


def test_position_is_the_notification_id_of_the_last_event(
    bus: CommandBus, settings: Settings
) -> None:
    owner = f"alice-{uuid.uuid4().hex[:6]}"
    created = bus.execute(m.CreateFamily(name="Arrows"), ctx(owner, "contributor"))
    updated = bus.execute(
        m.UpdateFamily(family_id=created.aggregate_id, name="Arrows 2"), ctx(owner, "contributor")
    )
    assert _rows_of(settings, created.aggregate_id) == [
        (1, created.position),
        (2, updated.position),
    ]
    assert updated.version == 2


def test_stale_expected_version_conflicts_and_appends_nothing(
    bus: CommandBus, apps: Applications
) -> None:
    owner = f"alice-{uuid.uuid4().hex[:6]}"
    family = bus.execute(m.CreateFamily(name="Arrows"), ctx(owner, "contributor"))
    head = _head(apps)
    with pytest.raises(VersionConflict):
        bus.execute(
            m.UpdateFamily(family_id=family.aggregate_id, name="X"),
            ctx(owner, "contributor", expected=3),
        )
    assert _head(apps) == head
    ok = bus.execute(
        m.UpdateFamily(family_id=family.aggregate_id, name="Y"),
        ctx(owner, "contributor", expected=1),
    )
    assert ok.version == 2


def test_idempotent_repeat_returns_the_first_result_and_appends_nothing(
    bus: CommandBus, apps: Applications
) -> None:
    owner = f"alice-{uuid.uuid4().hex[:6]}"
    keyed = ctx(owner, "contributor", key=f"key-{uuid.uuid4().hex}")
    first = bus.execute(m.CreateFamily(name="Arrows"), keyed)
    head = _head(apps)
    again = bus.execute(m.CreateFamily(name="Arrows"), keyed)
    assert (again.aggregate_id, again.version, again.position, again.replayed) == (
        first.aggregate_id,
        first.version,
        first.position,
        True,
    )
    assert _head(apps) == head


def test_concurrent_repeats_of_one_key_append_once(bus: CommandBus, apps: Applications) -> None:
    owner = f"alice-{uuid.uuid4().hex[:6]}"
    keyed = ctx(owner, "contributor", key=f"key-{uuid.uuid4().hex}")
    head = _head(apps)
    start = threading.Barrier(8)

    def send(_: int) -> tuple[uuid.UUID, int]:
        start.wait()
        result = bus.execute(m.CreateFamily(name="Once"), keyed)
        return result.aggregate_id, result.position

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = set(pool.map(send, range(8)))
    assert len(outcomes) == 1
    assert _head(apps) == head + 1


def test_a_failed_transaction_appends_nothing_from_any_aggregate_in_it(
    apps: Applications, settings: Settings
) -> None:
    owner = f"alice-{uuid.uuid4().hex[:6]}"
    family = Family.create(owner_id=owner, name="A", actor=owner, correlation_id="c")
    apps.catalog.save(family)
    stale = apps.catalog.repository.get(family.id)
    fresh = apps.catalog.repository.get(family.id)
    fresh.publish(actor=owner, correlation_id="c")
    apps.catalog.save(fresh)
    stale.update_details(
        name="B", description="", categories=(), tags=(), actor=owner, correlation_id="c"
    )
    newcomer = Family.create(owner_id=owner, name="New", actor=owner, correlation_id="c")
    head = _head(apps)
    with pytest.raises(IntegrityError):
        apps.catalog.save(newcomer, stale)
    assert _head(apps) == head
    assert _rows_of(settings, newcomer.id) == []


def test_group_commit_batches_and_keeps_per_aggregate_order(
    apps: Applications, settings: Settings
) -> None:
    bus = CommandBus(apps, ROUTES, group_commit=True)
    owner = f"alice-{uuid.uuid4().hex[:6]}"
    try:
        family = bus.execute(m.CreateFamily(name="F0"), ctx(owner, "contributor"))
        before = (bus.stats.transactions, bus.stats.commands)
        renames = [
            bus.submit(
                m.UpdateFamily(family_id=family.aggregate_id, name=f"F{n}"),
                ctx(owner, "contributor"),
            )
            for n in range(1, 61)
        ]
        others = [
            bus.submit(m.CreateFamily(name=f"G{n}"), ctx(f"{owner}-{n}", "contributor"))
            for n in range(60)
        ]
        results = [f.result() for f in renames]
        created = [f.result() for f in others]
    finally:
        bus.close()
    transactions = bus.stats.transactions - before[0]
    commands = bus.stats.commands - before[1]
    assert commands == 120
    assert transactions < commands
    assert [r.version for r in results] == list(range(2, 62))
    rows = _rows_of(settings, family.aggregate_id)
    assert [version for version, _ in rows] == list(range(1, 62))
    assert [position for _, position in rows] == sorted(position for _, position in rows)
    assert [r.position for r in results] == [position for _, position in rows[1:]]
    assert len({r.aggregate_id for r in created}) == 60
    assert apps.catalog.repository.get(family.aggregate_id).name == "F60"
