"""Parked events: a consumer group's poison events and, behind each, its key's later events.

Once an event of key K fails for good in a consumer group, K is *parked* there: the event and
every later event of K that the group consumes are stored here, in consumption order, instead of
being applied, so a view never moves past an event it is missing (its "newer version wins" guards
would otherwise discard the parked one when it comes back). Each parked event is also copied to
``<topic>.dlq`` for people and alerts; this table is what the runner acts on.

An operator resolves a parked key with a *request* (``iconmarket dlq replay`` / ``dlq skip``,
recorded with who asked and why). The group's own runner carries it out between two batches, on
its own thread: replay applies the key's parked events in order through the handler (stopping at
the first that still fails); skip drops them. Nothing else writes a group's parked events, so
parking and releasing can never race with the events still flowing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from infra.settings import Settings

PARKED_TABLE = "consumer_parked"
REQUESTS_TABLE = "consumer_park_requests"
Action = Literal["replay", "skip"]

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {PARKED_TABLE} (
    group_id text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    key bytea,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    error text NOT NULL,
    attempts integer NOT NULL,
    behind text,
    parked_at timestamptz NOT NULL DEFAULT now(),
    seq bigserial NOT NULL,
    PRIMARY KEY (group_id, topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS {PARKED_TABLE}_by_key ON {PARKED_TABLE} (group_id, key, seq);
CREATE TABLE IF NOT EXISTS {REQUESTS_TABLE} (
    id bigserial PRIMARY KEY,
    group_id text NOT NULL,
    action text NOT NULL CHECK (action IN ('replay', 'skip')),
    key bytea,
    requested_by text NOT NULL,
    reason text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz,
    outcome jsonb
);
CREATE INDEX IF NOT EXISTS {REQUESTS_TABLE}_pending ON {REQUESTS_TABLE} (group_id)
    WHERE done_at IS NULL;
"""


@dataclass(frozen=True)
class ParkedEvent:
    """One parked message of a group, as it was consumed."""

    group_id: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    error: str
    attempts: int
    behind: str | None
    seq: int

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class ParkRequest:
    """An operator's request to replay or skip a group's parked events (of one key, or all)."""

    id: int
    group_id: str
    action: Action
    key: bytes | None
    requested_by: str
    reason: str


class ParkingLot(Protocol):
    """Where a consumer group's parked events and the operators' requests are kept."""

    def parked_keys(self, group_id: str) -> set[bytes]: ...

    def park(self, event: ParkedEvent) -> None:
        """Store ``event`` (its ``seq`` is ignored); the same coordinates again are a no-op."""

    def entries(self, group_id: str, key: bytes | None = None) -> list[ParkedEvent]:
        """The group's parked events (of ``key``, if given), in the order they were parked."""

    def release(self, event: ParkedEvent) -> None:
        """Forget ``event``: it was applied, or an operator skipped it."""

    def update_failure(self, event: ParkedEvent, error: str, attempts: int) -> None: ...

    def request(
        self, group_id: str, action: Action, key: bytes | None, requested_by: str, reason: str
    ) -> int: ...

    def pending_requests(self, group_id: str) -> list[ParkRequest]: ...

    def finish(self, request_id: int, outcome: dict[str, Any]) -> None: ...

    def outcome(self, request_id: int) -> dict[str, Any] | None:
        """The outcome of a finished request, None while it is pending."""

    def close(self) -> None: ...


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[name, base64.b64encode(value).decode()] for name, value in headers])


def _decode_headers(stored: Any) -> tuple[tuple[str, bytes], ...]:
    rows = json.loads(stored) if isinstance(stored, str) else stored
    return tuple((name, base64.b64decode(value)) for name, value in rows)


class PostgresParkingLot:
    """The parking lot in PostgreSQL, on one autocommit connection opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._conn: Any = None

    def _db(self) -> Any:
        import psycopg

        if self._conn is not None and self._conn.closed:
            self._conn = None
        if self._conn is None:
            conn = psycopg.connect(self._settings.postgres_dsn, autocommit=True)
            try:
                # CREATE … IF NOT EXISTS races a concurrent one (a unique violation on the type
                # name): every process of `iconmarket run` opens its lot at once on a fresh
                # database, so the creation is serialised on an advisory lock.
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PARKED_TABLE,))
                    conn.execute(SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _run(self, query: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self._db().execute(query, params)
        except Exception:
            self._drop()  # reconnect on the next call: the error is classified by the caller
            raise

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def parked_keys(self, group_id: str) -> set[bytes]:
        rows = self._run(
            "SELECT DISTINCT key FROM consumer_parked WHERE group_id = %s AND key IS NOT NULL",
            (group_id,),
        ).fetchall()
        return {bytes(row[0]) for row in rows}

    def park(self, event: ParkedEvent) -> None:
        self._run(
            'INSERT INTO consumer_parked (group_id, topic, partition, "offset", key, value, '
            "headers, error, attempts, behind) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (
                event.group_id,
                event.topic,
                event.partition,
                event.offset,
                event.key,
                event.value,
                _encode_headers(event.headers),
                event.error,
                event.attempts,
                event.behind,
            ),
        )

    def entries(self, group_id: str, key: bytes | None = None) -> list[ParkedEvent]:
        query = (
            'SELECT group_id, topic, partition, "offset", key, value, headers, error, '
            "attempts, behind, seq FROM consumer_parked WHERE group_id = %s"
        )
        params: list[Any] = [group_id]
        if key is not None:
            query += " AND key = %s"
            params.append(key)
        rows = self._run(query + " ORDER BY seq", params).fetchall()
        return [
            ParkedEvent(
                group_id=row[0],
                topic=row[1],
                partition=int(row[2]),
                offset=int(row[3]),
                key=bytes(row[4]) if row[4] is not None else None,
                value=bytes(row[5]),
                headers=_decode_headers(row[6]),
                error=row[7],
                attempts=int(row[8]),
                behind=row[9],
                seq=int(row[10]),
            )
            for row in rows
        ]

    def release(self, event: ParkedEvent) -> None:
        self._run(
            "DELETE FROM consumer_parked WHERE group_id = %s AND topic = %s AND partition = %s "
            'AND "offset" = %s',
            (event.group_id, event.topic, event.partition, event.offset),
        )

    def update_failure(self, event: ParkedEvent, error: str, attempts: int) -> None:
        self._run(
            "UPDATE consumer_parked SET error = %s, attempts = %s WHERE group_id = %s "
            'AND topic = %s AND partition = %s AND "offset" = %s',
            (error, attempts, event.group_id, event.topic, event.partition, event.offset),
        )

    def request(
        self, group_id: str, action: Action, key: bytes | None, requested_by: str, reason: str
    ) -> int:
        row = self._run(
            "INSERT INTO consumer_park_requests (group_id, action, key, requested_by, reason) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (group_id, action, key, requested_by, reason),
        ).fetchone()
        return int(row[0])

    def pending_requests(self, group_id: str) -> list[ParkRequest]:
        rows = self._run(
            "SELECT id, group_id, action, key, requested_by, reason FROM consumer_park_requests "
            "WHERE group_id = %s AND done_at IS NULL ORDER BY id",
            (group_id,),
        ).fetchall()
        return [
            ParkRequest(
                id=int(row[0]),
                group_id=row[1],
                action=row[2],
                key=bytes(row[3]) if row[3] is not None else None,
                requested_by=row[4],
                reason=row[5],
            )
            for row in rows
        ]

    def finish(self, request_id: int, outcome: dict[str, Any]) -> None:
        self._run(
            "UPDATE consumer_park_requests SET done_at = now(), outcome = %s WHERE id = %s",
            (json.dumps(outcome), request_id),
        )

    def outcome(self, request_id: int) -> dict[str, Any] | None:
        row = self._run(
            "SELECT done_at, outcome FROM consumer_park_requests WHERE id = %s", (request_id,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        stored = row[1]
        return dict(json.loads(stored) if isinstance(stored, str) else stored)

    def close(self) -> None:
        self._drop()


def in_partitions(
    events: Sequence[ParkedEvent], partitions: Collection[tuple[str, int]] | None
) -> list[ParkedEvent]:
    """The events on ``partitions`` (all of them when ``partitions`` is None)."""
    if partitions is None:
        return list(events)
    return [event for event in events if (event.topic, event.partition) in partitions]
