"""The audit building blocks without services: the chain's canonical bytes, the verifier's
walk over rows, the log cursor, aggregate rendering, and the diff and its report."""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from domain.account import Account
from domain.audit_access import AuditAccess
from infra.audit.chain import link
from infra.audit.diff import compare, report_json, report_markdown
from infra.audit.history import attributes, format_cursor, parse_cursor
from infra.audit.verify import Checkpoint, _Walk
from infra.cli import build_parser

AGG = uuid.UUID("11111111-2222-3333-4444-555555555555")
OTHER = uuid.UUID("99999999-2222-3333-4444-555555555555")
TOPIC = b"domain.cart:Cart.Opened"


def test_link_hashes_the_documented_canonical_bytes() -> None:
    prev = hashlib.sha256(b"previous").digest()
    expected = hashlib.sha256(
        prev
        + AGG.bytes
        + struct.pack(">q", 2)
        + struct.pack(">q", 40)
        + struct.pack(">q", 17)
        + struct.pack(">i", len(TOPIC))
        + TOPIC
        + b'{"a":1}'
    ).digest()
    assert link(prev, AGG.bytes, 2, 40, 17, TOPIC, b'{"a":1}') == expected
    assert link(b"", AGG.bytes, 1, 40, None, TOPIC, b"{}") == link(
        b"", AGG.bytes, 1, 40, 0, TOPIC, b"{}"
    )
    variants = {
        link(prev, AGG.bytes, 2, 40, 17, TOPIC, b'{"a":1}'),
        link(prev, OTHER.bytes, 2, 40, 17, TOPIC, b'{"a":1}'),
        link(prev, AGG.bytes, 3, 40, 17, TOPIC, b'{"a":1}'),
        link(prev, AGG.bytes, 2, 41, 17, TOPIC, b'{"a":1}'),
        link(prev, AGG.bytes, 2, 40, 18, TOPIC, b'{"a":1}'),
        link(prev, AGG.bytes, 2, 40, 17, TOPIC + b"x", b'{"a":1}'),
        link(prev, AGG.bytes, 2, 40, 17, TOPIC, b'{"a":2}'),
        link(b"", AGG.bytes, 2, 40, 17, TOPIC, b'{"a":1}'),
    }
    assert len(variants) == 8


Row = tuple[bytes, int, int, int | None, bytes, bytes, bytes | None]


def _chain(*rows: tuple[uuid.UUID, int, int, bytes]) -> list[Row]:
    """Rows (aggregate, version, position, state) as the trigger would have stored them."""
    last: dict[uuid.UUID, tuple[bytes, int]] = {}
    stored: list[Row] = []
    for agg, version, position, state in rows:
        prev_hash, prev_position = last.get(agg, (b"", None))
        digest = link(prev_hash, agg.bytes, version, position, prev_position, TOPIC, state)
        stored.append((agg.bytes, version, position, prev_position, TOPIC, state, digest))
        last[agg] = (digest, position)
    return stored


def _walk(rows: list[Row], marks: Sequence[Checkpoint] = (), head: int = 0) -> list[Any]:
    walk = _Walk("commerce", list(marks))
    for row in rows:
        walk.check_marks_before(row[2])
        walk.row(*row)
    walk.finish(head or (rows[-1][2] if rows else 0))
    return [(b.kind, b.aggregate_id, b.version, b.position) for b in walk.breaks]


STORY = _chain(
    (AGG, 1, 1, b"a1"),
    (OTHER, 1, 2, b"o1"),
    (AGG, 2, 3, b"a2"),
    (AGG, 3, 5, b"a3"),
    (OTHER, 2, 6, b"o2"),
)


def _mark(rows: list[Row], position: int) -> Checkpoint:
    walk = _Walk("commerce", [])
    for row in rows:
        if row[2] <= position:
            walk.row(*row)
    return Checkpoint("commerce", position, walk.running, walk.count, "t0")


def test_an_untouched_chain_and_its_checkpoint_verify_clean() -> None:
    assert _walk(STORY, [_mark(STORY, 6)]) == []


def test_an_altered_row_is_named_exactly() -> None:
    rows = list(STORY)
    oid, version, position, prev, topic, _state, digest = rows[2]
    rows[2] = (oid, version, position, prev, topic, b"forged", digest)
    assert _walk(rows, [_mark(STORY, 6)]) == [("altered", str(AGG), 2, 3)]


def test_a_deleted_middle_row_is_named_with_its_position() -> None:
    rows = [row for row in STORY if row[2] != 3]
    assert _walk(rows) == [("missing", str(AGG), 2, 3)]


def test_a_deleted_last_event_is_caught_by_the_checkpoint_only() -> None:
    rows = [row for row in STORY if row[2] != 5]
    assert _walk(rows) == []
    assert _walk(rows, [_mark(STORY, 6)]) == [("checkpoint", None, None, 6)]


def test_a_truncated_log_and_a_relinked_row_are_reported() -> None:
    rows = [row for row in STORY if row[2] < 6]
    assert _walk(rows, [_mark(STORY, 6)], head=5) == [("truncated", None, None, 6)]
    relinked = list(STORY)
    oid, version, position, _prev, topic, state, digest = relinked[3]
    relinked[3] = (oid, version, position, 1, topic, state, digest)
    assert _walk(relinked) == [("relinked", str(AGG), 3, 5)]


def test_a_rewritten_chain_is_caught_by_the_checkpoint() -> None:
    mark = _mark(STORY, 6)
    forged = _chain(
        (AGG, 1, 1, b"a1"),
        (OTHER, 1, 2, b"o1"),
        (AGG, 2, 3, b"FORGED"),
        (AGG, 3, 5, b"a3"),
        (OTHER, 2, 6, b"o2"),
    )
    assert _walk(forged) == []
    assert _walk(forged, [mark]) == [("checkpoint", None, None, 6)]


def test_the_log_cursor_names_a_position_per_log() -> None:
    names = ["catalog", "commerce"]
    assert parse_cursor(None, names) == {"catalog": 1, "commerce": 1}
    assert parse_cursor("7", names) == {"catalog": 7, "commerce": 7}
    assert parse_cursor("commerce:12,identity:3", names) == {"catalog": 1, "commerce": 12}
    assert format_cursor({"catalog": 4, "commerce": 13}) == "catalog:4,commerce:13"
    for bad in ("commerce", "commerce:x", "shop:1", "catalog:1;commerce:2"):
        with pytest.raises(ValueError, match="<context>:<position>"):
            parse_cursor(bad, names)


def test_aggregate_state_is_rendered_without_secrets_or_pending_events() -> None:
    account = Account.register(
        email="Ann@Example.com",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        roles=["auditor"],
        actor="admin-1",
        correlation_id="corr-1",
    )
    state = attributes(account, "Account")
    assert set(state) == {"created_on", "id", "modified_on", "roles", "sessions_version", "version"}
    assert (state["id"], state["roles"], state["version"]) == (str(account.id), ["auditor"], 1)
    assert state["created_on"].endswith("Z")
    access = AuditAccess.record(
        operation="auditLog",
        target="log",
        parameters={"type": "Order.Paid", "limit": "100"},
        roles=["auditor"],
        actor="auditor-1",
        correlation_id="corr-2",
    )
    rendered = attributes(access, "AuditAccess")
    assert rendered["parameters"] == {"limit": "100", "type": "Order.Paid"}
    assert (rendered["operation"], rendered["target"]) == ("auditLog", "log")


def test_a_diff_lists_one_sided_and_changed_documents_field_by_field() -> None:
    left = {"cart:1": {"status": "open", "lines": "[]"}, "cart:2": {"status": "open"}, "x": 1}
    right = {
        "cart:1": {"status": "checked_out", "lines": "[]"},
        "cart:3": {"status": "open"},
        "x": 2,
    }
    result = compare("carts", "mid", "live", left, right)
    assert (result.left_count, result.right_count) == (3, 3)
    assert (result.only_left, result.only_right) == (["cart:2"], ["cart:3"])
    assert result.changed == {
        "cart:1": {"status": ["open", "checked_out"]},
        "x": {"": [1, 2]},
    }
    assert result.differences == 4
    report = report_json([result], "mid", "live")
    assert report["differences"] == 4
    assert report["projections"]["carts"]["only_right"] == ["cart:3"]
    markdown = report_markdown([result], "mid", "live")
    assert "| carts | 3 | 3 | 1 | 1 | 2 |" in markdown
    assert "- `cart:1` changed:\n  - `status`: `'open'` → `'checked_out'`" in markdown
    same = compare("carts", "a", "b", left, dict(left))
    assert same.differences == 0
    assert "No differences." in report_markdown([same], "a", "b")


@pytest.mark.parametrize("action", ["verify", "checkpoint", "replay", "diff", "drop", "export"])
def test_every_audit_command_has_help(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["audit", action, "--help"])
    assert exited.value.code == 0
    assert "usage: iconmarket audit" in capsys.readouterr().out


def test_prefetched_pages_arrive_in_order_and_a_reader_error_reaches_the_consumer() -> None:
    from infra.rebuild import prefetched

    def pages(fail: bool) -> Iterator[list[Any]]:
        for n in range(5):
            yield [n]
        if fail:
            raise RuntimeError("the store went away")

    assert list(prefetched(pages(fail=False))) == [[0], [1], [2], [3], [4]]
    failing = prefetched(pages(fail=True))
    assert [next(failing) for _ in range(5)] == [[0], [1], [2], [3], [4]]
    with pytest.raises(RuntimeError, match="the store went away"):
        next(failing)
    stopped = prefetched(pages(fail=False), depth=1)
    assert next(stopped) == [0]
    stopped.close()  # the consumer stops early: the reader thread ends too
