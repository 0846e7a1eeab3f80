"""The tamper-evidence chain: how each stored event is hashed, and sealing rows that predate it.

Every row of a context's events table carries

- ``chain_prev``: the position (notification id) of the aggregate's previous event (NULL for
  version 1), and
- ``chain_hash`` = sha256(previous hash of the aggregate || canonical bytes of the row),

set by a BEFORE INSERT trigger in the inserting transaction (`commands.persistence`). The
canonical bytes are, in this order: the aggregate id (16 bytes), its version, the row's position
and ``chain_prev`` (0 when NULL) as signed 64-bit big-endian integers, the topic's UTF-8 length
(32-bit big-endian) and bytes, then the stored state as is. Version 1 chains from the empty
string. :func:`link` is the same function in Python; `infra.audit.verify` recomputes it.

Rows written before the trigger existed have no hash; :func:`seal` fills them in once (``iconmarket
init``), so history before the chain existed is sealed as it stood at that moment. Each log's
sealing is recorded in ``audit_sealed``; a later ``init`` never seals that log again, so a hash
removed afterwards is not laundered but stays a break that ``audit verify`` reports.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

_NUMBERS = struct.Struct(">qqqi")
CHECKPOINTS_TABLE = "audit_checkpoints"
SEALS_TABLE = "audit_sealed"
SEAL_LOCK = "iconmarket-audit-seal"
SEAL_BATCH = 20_000


def link(  # noqa: PLR0917 - one argument per canonical field
    prev_hash: bytes,
    originator_id: bytes,
    version: int,
    position: int,
    prev_position: int | None,
    topic: bytes,
    state: bytes,
) -> bytes:
    """The chain hash of one row (``originator_id`` as its 16 raw bytes, ``topic`` UTF-8)."""
    numbers = _NUMBERS.pack(version, position, prev_position or 0, len(topic))
    return hashlib.sha256(b"".join((prev_hash, originator_id, numbers, topic, state))).digest()


def events_table(context: str) -> str:
    return f"{context}_events"


def ensure_checkpoints_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS {table} ("
            "context text NOT NULL, position bigint NOT NULL, head_hash bytea NOT NULL, "
            "event_count bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (context, position))"
        ).format(table=Identifier(CHECKPOINTS_TABLE))
    )


def ensure_seals_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS {table} ("
            "context text PRIMARY KEY, position bigint NOT NULL, sealed bigint NOT NULL, "
            "sealed_at timestamptz NOT NULL DEFAULT now())"
        ).format(table=Identifier(SEALS_TABLE))
    )


@dataclass(frozen=True)
class Sealing:
    """When a log's history was sealed: its head then, and how many rows got a hash."""

    context: str
    position: int
    sealed: int
    sealed_at: Any


def sealing(conn: psycopg.Connection[Any], context: str) -> Sealing | None:
    """The recorded sealing of ``context``'s log, or None if it was never sealed."""
    ensure_seals_table(conn)
    row = conn.execute(
        SQL("SELECT position, sealed, sealed_at FROM {table} WHERE context = %s").format(
            table=Identifier(SEALS_TABLE)
        ),
        (context,),
    ).fetchone()
    return None if row is None else Sealing(context, int(row[0]), int(row[1]), row[2])


@dataclass
class SealResult:
    """Rows given a hash by :func:`seal`, and rows it could not seal (their predecessor is gone).

    ``already`` is the earlier sealing when the log was sealed before (nothing was done)."""

    sealed: int = 0
    orphans: list[tuple[str, int, int]] = field(default_factory=list)
    already: Sealing | None = None


def _unsealed(conn: psycopg.Connection[Any], table: str) -> list[tuple[Any, ...]]:
    probe = SQL("SELECT 1 FROM {table} WHERE chain_hash IS NULL LIMIT 1").format(
        table=Identifier(table)
    )
    if conn.execute(probe).fetchone() is None:
        return []
    query = SQL(
        "SELECT uuid_send(e.originator_id), e.originator_version, e.notification_id, "
        "convert_to(coalesce(e.topic, ''), 'UTF8'), coalesce(e.state, ''::bytea), "
        "p.chain_hash, p.notification_id, e.originator_id "
        "FROM {table} e LEFT JOIN {table} p ON p.originator_id = e.originator_id "
        "AND p.originator_version = e.originator_version - 1 "
        "WHERE e.chain_hash IS NULL ORDER BY e.originator_id, e.originator_version"
    ).format(table=Identifier(table))
    with conn.cursor(binary=True) as curs:
        return list(curs.execute(query))


def _write(
    conn: psycopg.Connection[Any], table: str, rows: list[tuple[int, bytes, int | None]]
) -> None:
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS audit_seal (n bigint, h bytea, p bigint) "
            "ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy("COPY audit_seal (n, h, p) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.execute(
            SQL(
                "UPDATE {table} t SET chain_hash = s.h, chain_prev = s.p FROM audit_seal s "
                "WHERE t.notification_id = s.n AND t.chain_hash IS NULL"
            ).format(table=Identifier(table))
        )


def seal(
    conn: psycopg.Connection[Any], context: str, report: Callable[[str], None] | None = None
) -> SealResult:
    """Give every row without a hash its chain hash, aggregate by aggregate in version order.

    Runs while writers keep writing: a row inserted meanwhile after an unsealed predecessor gets
    no hash from the trigger, so passes repeat until nothing is left (or only orphans are)."""
    table = events_table(context)
    result = SealResult()
    seen_orphans: set[int] = set()
    while True:
        rows = _unsealed(conn, table)
        pending = [row for row in rows if row[2] not in seen_orphans]
        if not pending:
            return result
        computed: dict[tuple[bytes, int], tuple[bytes, int]] = {}
        updates: list[tuple[int, bytes, int | None]] = []
        for oid, version, position, topic, state, prev_hash, prev_position, uid in pending:
            if version == 1:
                prev, prev_pos = b"", None
            elif prev_hash is not None:
                prev, prev_pos = bytes(prev_hash), prev_position
            elif (oid, version - 1) in computed:
                prev, prev_pos = computed[(oid, version - 1)]
            else:
                seen_orphans.add(position)
                result.orphans.append((str(uid), version, position))
                continue
            digest = link(prev, oid, version, position, prev_pos, topic, state)
            computed[(oid, version)] = (digest, position)
            updates.append((position, digest, prev_pos))
        for start in range(0, len(updates), SEAL_BATCH):
            _write(conn, table, updates[start : start + SEAL_BATCH])
        result.sealed += len(updates)
        if report is not None and updates:
            report(f"audit: sealed {len(updates)} {context} events written before the chain")
        if not updates:
            return result


def _record_sealing(conn: psycopg.Connection[Any], context: str, result: SealResult) -> None:
    conn.execute(
        SQL(
            "INSERT INTO {seals} (context, position, sealed) "
            "SELECT %s, coalesce(max(notification_id), 0), %s FROM {table}"
        ).format(seals=Identifier(SEALS_TABLE), table=Identifier(events_table(context))),
        (context, result.sealed),
    )


def seal_all(dsn: str, contexts: list[str], report: Callable[[str], None]) -> list[SealResult]:
    """Create the checkpoints table and, once per log, seal its rows written before the chain
    (``iconmarket init``). A log whose sealing is recorded is left alone: a row found without a
    hash later was written around the trigger or had its hash removed, and must stay visible."""
    results: list[SealResult] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_checkpoints_table(conn)
        ensure_seals_table(conn)
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (SEAL_LOCK,))  # one init at a time
        try:
            results = [_seal_once(conn, context, report) for context in contexts]
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (SEAL_LOCK,))
    return results


def _seal_once(
    conn: psycopg.Connection[Any], context: str, report: Callable[[str], None]
) -> SealResult:
    earlier = sealing(conn, context)
    if earlier is not None:
        return SealResult(already=earlier)
    result = seal(conn, context, report)
    for aggregate_id, version, position in result.orphans:
        report(
            f"audit: {context} event {aggregate_id} v{version} at position {position} "
            "cannot be sealed: its previous version is missing (run `iconmarket audit verify`)"
        )
    _record_sealing(conn, context, result)
    return result
