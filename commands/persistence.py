"""Event-store recorders that also record idempotency keys, in the same transaction as the events.

A command saved with ``idempotency=[IdempotencyRecord, ...]`` either appends its events *and* its
keys, or nothing: a repeated key (even from a concurrent request) violates the key's primary key,
which rolls the events back too. The stored result is looked up by key afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier


@dataclass(frozen=True)
class IdempotencyRecord:
    """One command's key, the fingerprint of its request, and the aggregate version it produced."""

    key: str
    fingerprint: str
    aggregate_id: UUID
    version: int


@dataclass(frozen=True)
class StoredOutcome:
    """What a keyed command produced the first time it ran."""

    fingerprint: str
    aggregate_id: UUID
    version: int
    position: int


class IdempotentRecorder:
    """The lookup every idempotent recorder offers."""

    def find_outcome(self, key: str) -> StoredOutcome | None:
        raise NotImplementedError


class IdempotentPostgresRecorder(PostgresApplicationRecorder, IdempotentRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idempotency_table_name = (
            self.events_table_name.removesuffix("_events") + "_idempotency"
        )
        table = Identifier(self.datastore.schema, self.idempotency_table_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {table} ("
                "idempotency_key text PRIMARY KEY, "
                "fingerprint text NOT NULL, "
                "aggregate_id uuid NOT NULL, "
                "aggregate_version bigint NOT NULL, "
                "recorded_at timestamptz NOT NULL DEFAULT now())"
            ).format(table=table)
        )
        self._insert_key = SQL(
            "INSERT INTO {table} (idempotency_key, fingerprint, aggregate_id, aggregate_version) "
            "VALUES (%s, %s, %s, %s)"
        ).format(table=table)
        self._select_outcome = SQL(
            "SELECT k.fingerprint, k.aggregate_id, k.aggregate_version, e.notification_id "
            "FROM {table} k JOIN {events} e "
            "ON e.originator_id = k.aggregate_id AND e.originator_version = k.aggregate_version "
            "WHERE k.idempotency_key = %s"
        ).format(table=table, events=Identifier(self.datastore.schema, self.events_table_name))

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        records: Sequence[IdempotencyRecord] = kwargs.get("idempotency", ())
        if records:
            curs.executemany(
                self._insert_key,
                [(r.key, r.fingerprint, r.aggregate_id, r.version) for r in records],
            )
        super()._insert_events(curs, stored_events, **kwargs)

    def find_outcome(self, key: str) -> StoredOutcome | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_outcome, (key,), prepare=True)
            row = curs.fetchone()
        if row is None:
            return None
        return StoredOutcome(
            fingerprint=row["fingerprint"],
            aggregate_id=row["aggregate_id"],
            version=row["aggregate_version"],
            position=row["notification_id"],
        )


class IdempotentPopoRecorder(POPOApplicationRecorder, IdempotentRecorder):
    """The in-memory twin, for unit tests."""

    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[str, IdempotencyRecord] = {}
        self._keys_lock = threading.Lock()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        records: Sequence[IdempotencyRecord] = kwargs.get("idempotency", ())
        with self._keys_lock:
            repeated = [r.key for r in records if r.key in self._keys]
            if repeated or len({r.key for r in records}) != len(records):
                raise IntegrityError(f"idempotency key(s) already recorded: {repeated}")
            ids = super().insert_events(stored_events, **kwargs)
            for record in records:
                self._keys[record.key] = record
        return ids

    def find_outcome(self, key: str) -> StoredOutcome | None:
        with self._keys_lock:
            record = self._keys.get(key)
        if record is None:
            return None
        for notification in self.select_notifications(start=None, limit=1_000_000):
            if notification.originator_id == record.aggregate_id and (
                notification.originator_version == record.version
            ):
                return StoredOutcome(
                    record.fingerprint, record.aggregate_id, record.version, notification.id
                )
        return None


class IdempotentPostgresFactory(PostgresFactory):
    application_recorder_class = IdempotentPostgresRecorder


class IdempotentPopoFactory(POPOFactory):
    def application_recorder(self) -> IdempotentPopoRecorder:
        return IdempotentPopoRecorder()
