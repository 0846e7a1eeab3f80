"""The log watermark: which Kafka offsets hold every event of a log up to a position.

Positions are notification ids of one bounded context's log; the relay publishes them to that
context's topic, partitioned by aggregate, and a projection consumes the partitions
independently. So "the highest position applied" says nothing about the other partitions: a
read model has reached position P only when it has applied, on *every* partition, every message
the relay produced for a position at or before P.

The relay records that set as a *mark*, in ``relay_marks``, in the transaction that moves its
position past a batch Kafka acknowledged: the batch's last position, and per partition of the
topic the offset after the last message produced so far (cumulative: a partition the batch did
not write keeps its earlier end). Every mark at or after P covers P, the first one most tightly.
A projection records, next to its positions, the offset after the last message it applied per
partition (`projections.positions`); it has reached P when each of the covering mark's ends is
at or below its own (`Mark.reached_by`).

A position with no mark yet is either not relayed yet (at or below the log's head: wait) or
beyond the head (no command returned it: answered at once, never waited on). Marks older than
the newest ``MARKS_KEPT`` of a log are pruned; a position before the oldest kept mark is covered
by that mark, which every running projection passed long ago.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql

MARKS_TABLE = "relay_marks"
MARKS_KEPT = 10_000
PRUNE_EVERY = 500
"""Marks are pruned once every this many saves of one relay."""


def partition_key(topic: str, partition: int) -> str:
    """How a partition is named in marks and in the projections' applied offsets."""
    return f"{topic}/{partition}"


@dataclass(frozen=True)
class Mark:
    """Every message produced for a position at or before ``position`` lies before ``ends``."""

    position: int
    ends: Mapping[str, int]

    def reached_by(self, applied: Mapping[str, int]) -> bool:
        """Whether a consumer whose next offsets per partition are ``applied`` has applied
        every message before the mark's ends."""
        return all(applied.get(where, 0) >= end for where, end in self.ends.items())


def create_marks_table(conn: Any) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (log_name text NOT NULL, position bigint NOT NULL, "
            "ends jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (log_name, position))"
        ).format(sql.Identifier(MARKS_TABLE))
    )


def latest_mark(conn: Any, log_name: str) -> Mark | None:
    return _mark(
        conn,
        sql.SQL(
            "SELECT position, ends FROM {} WHERE log_name = %s ORDER BY position DESC LIMIT 1"
        ).format(sql.Identifier(MARKS_TABLE)),
        (log_name,),
    )


def record_mark(
    conn: Any, log_name: str, position: int, ends: Mapping[tuple[str, int], int], *, prune: bool
) -> Mark:
    """Record the mark of ``position`` (in the caller's transaction): the latest mark's ends,
    moved forward by the ``ends`` Kafka acknowledged since. ``prune`` also drops old marks."""
    previous = latest_mark(conn, log_name)
    merged = dict(previous.ends) if previous is not None else {}
    for (topic, partition), end in ends.items():
        where = partition_key(topic, partition)
        merged[where] = max(merged.get(where, 0), end)
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (log_name, position, ends) VALUES (%s, %s, %s) "
            "ON CONFLICT (log_name, position) DO UPDATE SET ends = EXCLUDED.ends"
        ).format(sql.Identifier(MARKS_TABLE)),
        (log_name, position, json.dumps(merged, sort_keys=True)),
    )
    if prune:
        conn.execute(
            sql.SQL(
                "DELETE FROM {table} WHERE log_name = %s AND position < ("
                "SELECT position FROM {table} WHERE log_name = %s "
                "ORDER BY position DESC OFFSET %s LIMIT 1)"
            ).format(table=sql.Identifier(MARKS_TABLE)),
            (log_name, log_name, MARKS_KEPT - 1),
        )
    return Mark(position, merged)


def covering_mark(conn: Any, log_name: str, position: int) -> Mark | None:
    """The first mark at or after ``position``, or None when the relay has not got there yet
    (or has never run: the table does not exist)."""
    import psycopg

    try:
        return _mark(
            conn,
            sql.SQL(
                "SELECT position, ends FROM {} WHERE log_name = %s AND position >= %s "
                "ORDER BY position LIMIT 1"
            ).format(sql.Identifier(MARKS_TABLE)),
            (log_name, position),
        )
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return None


def _mark(conn: Any, query: sql.Composed, params: tuple[Any, ...]) -> Mark | None:
    from psycopg.rows import tuple_row

    with conn.cursor(row_factory=tuple_row) as cursor:
        row = cursor.execute(query, params).fetchone()
    return None if row is None else Mark(int(row[0]), _ends(row[1]))


def _ends(stored: Any) -> dict[str, int]:
    raw = json.loads(stored) if isinstance(stored, str) else stored
    return {str(where): int(end) for where, end in raw.items()}
