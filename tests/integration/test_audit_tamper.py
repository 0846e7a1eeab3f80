"""Tamper drills on a scratch event store (never the shared one): `audit verify` passes on the
untouched story and names the exact aggregate, version and position of an altered or deleted
row; checkpoints catch what a per-aggregate chain cannot (a deleted last event)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.sql import SQL, Composed, Identifier

from infra.audit.chain import seal_all
from infra.audit.scratch import scratch_database
from infra.audit.verify import verify_in_sql
from infra.bootstrap import Container, bootstrap
from infra.cli import main
from infra.settings import Settings
from tests.integration.test_audit_history import Story, write_story

ROW = (
    "SELECT originator_id, originator_version, topic, state, notification_id "
    "FROM commerce_events WHERE notification_id = %s"
)


@pytest.fixture(scope="module")
def drill(settings: Settings) -> Iterator[tuple[Settings, Story]]:
    with scratch_database(settings) as scratch_settings:
        container: Container = bootstrap(scratch_settings)
        try:
            story = write_story(container, uuid.uuid4().hex[:6])
        finally:
            container.close()
        yield scratch_settings, story


def _verify(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: str
) -> tuple[int, dict[str, Any]]:
    monkeypatch.setenv("ICONMARKET_POSTGRES_DB", db)
    code = main(["audit", "verify", "--json", "--context", "commerce"])
    return code, json.loads(capsys.readouterr().out)


def _breaks(report: dict[str, Any]) -> list[tuple[str, str | None, int | None, int | None]]:
    return [(b["kind"], b["aggregate_id"], b["version"], b["position"]) for b in report["breaks"]]


def _sql(settings: Settings, statement: str | Composed, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchone() if cursor.description else None


def _delete(settings: Settings, position: int) -> tuple[Any, ...]:
    row = _sql(settings, ROW, (position,))
    _sql(settings, "DELETE FROM commerce_events WHERE notification_id = %s", (position,))
    return tuple(row)


def _restore(settings: Settings, row: tuple[Any, ...]) -> None:
    """Put a deleted row back as it was (the trigger recomputes the same chain hash)."""
    _sql(
        settings,
        "INSERT INTO commerce_events (originator_id, originator_version, topic, state, "
        "notification_id) VALUES (%s, %s, %s, %s, %s)",
        row,
    )


def test_sealing_history_written_before_the_chain_gives_the_triggers_own_hashes(
    drill: tuple[Settings, Story],
) -> None:
    scratch_settings, _story = drill
    hashes = SQL("SELECT array_agg(chain_hash ORDER BY notification_id), count(*) FROM {}")
    unseal = SQL("UPDATE {} SET chain_hash = NULL, chain_prev = NULL")
    tables = {c: Identifier(f"{c}_events") for c in ("catalog", "commerce")}
    before = {c: _sql(scratch_settings, hashes.format(t)) for c, t in tables.items()}
    for table in tables.values():
        _sql(scratch_settings, unseal.format(table))
    sealed = seal_all(scratch_settings.postgres_dsn, ["catalog", "commerce"], lambda _m: None)
    assert [(r.sealed, r.orphans) for r in sealed] == [(before["catalog"][1], []), (12, [])]
    after = {c: _sql(scratch_settings, hashes.format(t)) for c, t in tables.items()}
    assert after == before
    assert all(h is not None for h in after["commerce"][0])


def test_verify_is_clean_then_names_each_altered_and_deleted_row(
    drill: tuple[Settings, Story],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scratch_settings, story = drill
    db = scratch_settings.postgres_db
    order, transaction, cart = (
        str(story.order_id),
        str(story.transaction_id),
        str(story.cart_id),
    )

    code, report = _verify(monkeypatch, capsys, db)
    assert (code, report["clean"], report["breaks"]) == (0, True, [])
    [log] = report["logs"]
    assert (log["context"], log["events"], log["head"], log["checkpoint_recorded"]) == (
        "commerce",
        12,
        12,
        True,
    )
    assert verify_in_sql(scratch_settings.postgres_dsn, "commerce") == 0

    # 1. a refund reason rewritten in place
    original = _sql(scratch_settings, ROW, (12,))[3]
    _sql(
        scratch_settings,
        "UPDATE commerce_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        "'requested_by_customer', 'goodwill'), 'UTF8') WHERE notification_id = 12",
    )
    code, report = _verify(monkeypatch, capsys, db)
    assert code == 1
    assert _breaks(report) == [("altered", order, 4, 12)]
    assert verify_in_sql(scratch_settings.postgres_dsn, "commerce") == 1
    _sql(
        scratch_settings,
        "UPDATE commerce_events SET state = %s WHERE notification_id = 12",
        (original,),
    )
    assert _verify(monkeypatch, capsys, db)[0] == 0

    # 2. a payment's success deleted from the middle of its aggregate
    succeeded = _delete(scratch_settings, 9)
    code, report = _verify(monkeypatch, capsys, db)
    assert code == 1
    assert _breaks(report) == [("missing", transaction, 2, 9), ("checkpoint", None, None, 12)]
    assert "between positions 0 and 12" in report["breaks"][1]["detail"]
    _restore(scratch_settings, succeeded)
    assert _verify(monkeypatch, capsys, db)[0] == 0

    # 3. the last event of an aggregate deleted: only the checkpoint can see it
    checked_out = _delete(scratch_settings, 5)
    assert checked_out[:2] == (story.cart_id, 5)
    code, report = _verify(monkeypatch, capsys, db)
    assert code == 1
    assert _breaks(report) == [("checkpoint", None, None, 12)]
    assert "recorded 12 events up to position 12" in report["breaks"][0]["detail"]
    _restore(scratch_settings, checked_out)
    assert _verify(monkeypatch, capsys, db)[0] == 0

    # 4. the tail of the log deleted
    _delete(scratch_settings, 12)
    code, report = _verify(monkeypatch, capsys, db)
    assert code == 1
    assert _breaks(report) == [("truncated", None, None, 12)]
    assert cart  # the cart's own chain stayed whole throughout


def test_a_row_inserted_around_the_trigger_is_reported_unsealed(
    drill: tuple[Settings, Story],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scratch_settings, story = drill
    _sql(
        scratch_settings,
        "UPDATE commerce_events SET chain_hash = NULL WHERE notification_id = 1",
    )
    code, report = _verify(monkeypatch, capsys, scratch_settings.postgres_db)
    assert code == 1
    assert ("unsealed", str(story.cart_id), 1, 1) in _breaks(report)


def test_init_seals_once_so_a_hash_removed_later_is_reported_not_laundered(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with scratch_database(settings) as scratch_settings:
        container: Container = bootstrap(scratch_settings)
        try:
            story = write_story(container, uuid.uuid4().hex[:6])
        finally:
            container.close()
        db = scratch_settings.postgres_db
        monkeypatch.setenv("ICONMARKET_POSTGRES_DB", db)
        # history from before the chain: the first init seals it
        _sql(scratch_settings, "UPDATE commerce_events SET chain_hash = NULL, chain_prev = NULL")
        assert main(["init"]) == 0
        sealed = _sql(
            scratch_settings,
            "SELECT position, sealed FROM audit_sealed WHERE context = 'commerce'",
        )
        assert sealed == (12, 12)
        assert main(["audit", "verify", "--json", "--context", "commerce", "--no-checkpoint"]) == 0
        assert json.loads(capsys.readouterr().out)["breaks"] == []

        _sql(
            scratch_settings,
            "UPDATE commerce_events SET chain_hash = NULL WHERE notification_id = 9",
        )
        assert main(["init"]) == 0  # a restart: must not seal that row again
        assert _sql(
            scratch_settings, "SELECT chain_hash FROM commerce_events WHERE notification_id = 9"
        ) == (None,)
        assert _sql(
            scratch_settings,
            "SELECT position, sealed FROM audit_sealed WHERE context = 'commerce'",
        ) == (12, 12)
        capsys.readouterr()
        code, report = _verify(monkeypatch, capsys, db)
        assert code == 1
        assert _breaks(report) == [("unsealed", str(story.transaction_id), 2, 9)]
        assert "sealed up to position 12" in report["breaks"][0]["detail"]
