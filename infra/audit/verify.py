"""Recompute every chain of a context's log in Python and compare it with what is stored.

One pass over the log in position order (a server-side cursor, large binary batches, one
consistent snapshot) checks, for each row: that the aggregate's previous version was seen and
is the position the row names (else a row was deleted), and that sha256(previous stored hash ||
canonical bytes) equals the stored hash (else the row was altered). A running hash over the log,
``head = sha256(head || position || chain_hash)``, is compared with every checkpoint in
``audit_checkpoints``; this catches what a per-aggregate chain cannot: a deleted last event of
an aggregate, a removed tail of the log, or an aggregate whose whole chain was rewritten.
"""

from __future__ import annotations

import hashlib
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from commands.log import Progress
from infra.audit.chain import (
    CHECKPOINTS_TABLE,
    Sealing,
    ensure_checkpoints_table,
    events_table,
    link,
    sealing,
)

BATCH = 20_000
_POSITION = struct.Struct(">q")


@dataclass(frozen=True)
class Break:
    """One place where the stored history is not what was written.

    ``kind``: ``altered`` (the row's bytes or hash changed), ``missing`` (a version of the
    aggregate is gone; ``position`` is where it was), ``relinked`` (the row names another
    predecessor than the one stored), ``unsealed`` (no hash: written around the chain),
    ``checkpoint`` (the log up to a checkpoint differs from it) or ``truncated`` (the log ends
    before a checkpoint's position).
    """

    context: str
    kind: str
    aggregate_id: str | None
    version: int | None
    position: int | None
    detail: str


@dataclass(frozen=True)
class Checkpoint:
    context: str
    position: int
    head_hash: bytes
    event_count: int
    created_at: Any


@dataclass
class Verdict:
    """The outcome for one context's log."""

    context: str
    head: int = 0
    events: int = 0
    head_hash: bytes = b""
    seconds: float = 0.0
    checkpoints_checked: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.breaks

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def checkpoints(conn: psycopg.Connection[Any], context: str) -> list[Checkpoint]:
    ensure_checkpoints_table(conn)
    rows = conn.execute(
        SQL(
            "SELECT position, head_hash, event_count, created_at FROM {table} "
            "WHERE context = %s ORDER BY position"
        ).format(table=Identifier(CHECKPOINTS_TABLE)),
        (context,),
    ).fetchall()
    return [Checkpoint(context, r[0], bytes(r[1]), r[2], r[3]) for r in rows]


def _uid(raw: bytes) -> str:
    return str(uuid.UUID(bytes=raw))


class _Walk:
    """The state of one pass: each aggregate's last row, the running log hash, the breaks."""

    def __init__(
        self, context: str, marks: list[Checkpoint], sealed: Sealing | None = None
    ) -> None:
        self.context = context
        self.sealed = sealed
        self.last: dict[bytes, tuple[int, int, bytes | None]] = {}
        self.running = b""
        self.count = 0
        self.marks = marks
        self.next_mark = 0
        self.checked_marks = 0
        self.last_good_mark = 0
        self.breaks: list[Break] = []

    def check_marks_before(self, position: int) -> None:
        while self.next_mark < len(self.marks) and self.marks[self.next_mark].position < position:
            self._check(self.marks[self.next_mark])
            self.next_mark += 1

    def _check(self, mark: Checkpoint) -> None:
        self.checked_marks += 1
        if mark.event_count == self.count and mark.head_hash == self.running:
            self.last_good_mark = mark.position
            return
        self.breaks.append(
            Break(
                self.context,
                "checkpoint",
                None,
                None,
                mark.position,
                f"the checkpoint of {mark.created_at} recorded {mark.event_count} events up to "
                f"position {mark.position}, head {mark.head_hash.hex()}; the log now has "
                f"{self.count}, head {self.running.hex()}: events between positions "
                f"{self.last_good_mark} and {mark.position} were deleted, inserted or rewritten",
            )
        )

    def row(  # noqa: PLR0917 - one argument per stored column
        self,
        oid: bytes,
        version: int,
        position: int,
        prev_position: int | None,
        topic: bytes,
        state: bytes,
        stored: bytes | None,
    ) -> None:
        last = self.last.get(oid)
        prev_hash: bytes | None = b""
        if version > 1:
            prev_hash = None
            if last is None or last[0] != version - 1:
                gone = 1 if last is None else last[0] + 1
                where = prev_position if gone == version - 1 else None
                self._break("missing", oid, gone, where, f"version {gone} is not in the log")
            elif last[1] != prev_position:
                self._break(
                    "relinked",
                    oid,
                    version,
                    position,
                    f"the row names position {prev_position} as its predecessor; "
                    f"version {version - 1} is at {last[1]}",
                )
            else:
                prev_hash = last[2]
        if stored is None:
            self._break("unsealed", oid, version, position, self._unsealed_detail(position))
        elif prev_hash is not None:
            digest = link(prev_hash, oid, version, position, prev_position, topic, state)
            if digest != stored:
                self._break(
                    "altered",
                    oid,
                    version,
                    position,
                    f"stored hash {stored.hex()}, recomputed {digest.hex()}",
                )
        self.last[oid] = (version, position, stored)
        self.running = hashlib.sha256(
            self.running + _POSITION.pack(position) + (stored or b"")
        ).digest()
        self.count += 1

    def _unsealed_detail(self, position: int) -> str:
        if self.sealed is None:
            return "the row has no chain hash (the log was never sealed: run `iconmarket init`)"
        if position <= self.sealed.position:
            return (
                f"the row has no chain hash, yet the log was sealed up to position "
                f"{self.sealed.position} on {self.sealed.sealed_at}: its hash was removed since"
            )
        return "the row has no chain hash: it was written around the trigger"

    def _break(
        self, kind: str, oid: bytes, version: int, position: int | None, detail: str
    ) -> None:
        self.breaks.append(Break(self.context, kind, _uid(oid), version, position, detail))

    def finish(self, head: int) -> None:
        self.check_marks_before(head + 1)
        for mark in self.marks[self.next_mark :]:
            self.breaks.append(
                Break(
                    self.context,
                    "truncated",
                    None,
                    None,
                    mark.position,
                    f"the log ends at position {head}, before the checkpoint at {mark.position} "
                    f"({mark.event_count} events): its tail was deleted",
                )
            )


def verify_context(
    dsn: str, context: str, progress: Progress | None = None, *, batch: int = BATCH
) -> Verdict:
    """Check ``context``'s whole log, as of one snapshot."""
    began = time.perf_counter()
    table = Identifier(events_table(context))
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        marks = checkpoints(conn, context)
        sealed = sealing(conn, context)
        conn.commit()
        head_row = conn.execute(
            SQL("SELECT coalesce(max(notification_id), 0), count(*) FROM {table}").format(
                table=table
            )
        ).fetchone()
        assert head_row is not None
        head, total = int(head_row[0]), int(head_row[1])
        walk = _Walk(context, marks, sealed)
        query = SQL(
            "SELECT uuid_send(originator_id), originator_version, notification_id, chain_prev, "
            "convert_to(coalesce(topic, ''), 'UTF8'), coalesce(state, ''::bytea), chain_hash "
            "FROM {table} WHERE notification_id <= %s ORDER BY notification_id"
        ).format(table=table)
        with conn.cursor(name=f"audit_verify_{context}", binary=True) as curs:
            curs.itersize = batch
            curs.execute(query, (head,))
            while rows := curs.fetchmany(batch):
                for oid, version, position, prev, topic, state, stored in rows:
                    walk.check_marks_before(position)
                    walk.row(oid, version, position, prev, topic, state, stored)
                if progress is not None:
                    progress(context, walk.count, total)
        walk.finish(head)
        conn.rollback()
    return Verdict(
        context=context,
        head=head,
        events=walk.count,
        head_hash=walk.running,
        seconds=time.perf_counter() - began,
        checkpoints_checked=walk.checked_marks,
        breaks=walk.breaks,
    )


def write_checkpoint(dsn: str, verdict: Verdict) -> bool:
    """Record a clean verdict's head as a checkpoint (nothing when it is not clean, or when the
    log has not grown since the last one)."""
    if not verdict.clean or verdict.head == 0:
        return False
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_checkpoints_table(conn)
        inserted = conn.execute(
            SQL(
                "INSERT INTO {table} (context, position, head_hash, event_count) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(table=Identifier(CHECKPOINTS_TABLE)),
            (verdict.context, verdict.head, verdict.head_hash, verdict.events),
        )
        return inserted.rowcount == 1


def verify_in_sql(dsn: str, context: str) -> int:
    """A cross-check computed entirely by PostgreSQL: the rows whose stored hash differs from
    sha256(stored predecessor hash || canonical bytes). Slower; not a replacement for the
    Python pass (it cannot see deleted rows)."""
    table = Identifier(events_table(context))
    query = SQL(
        "SELECT count(*) FROM {table} e LEFT JOIN {table} p "
        "ON p.originator_id = e.originator_id AND p.originator_version = e.originator_version - 1 "
        "WHERE e.chain_hash IS DISTINCT FROM sha256("
        "CASE WHEN e.originator_version = 1 THEN ''::bytea ELSE p.chain_hash END "
        "|| uuid_send(e.originator_id) || int8send(e.originator_version) "
        "|| int8send(e.notification_id) || int8send(coalesce(e.chain_prev, 0)) "
        "|| int4send(octet_length(convert_to(coalesce(e.topic, ''), 'UTF8'))) "
        "|| convert_to(coalesce(e.topic, ''), 'UTF8') || coalesce(e.state, ''::bytea))"
    ).format(table=table)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])
