"""Event-store recorders that also record idempotency keys, in the same transaction as the events.

A command saved with ``idempotency=[IdempotencyRecord, ...]`` either appends its events *and* its
keys, or nothing: a repeated key (even from a concurrent request) violates the key's primary key,
which rolls the events back too. The stored result is looked up by key afterwards; its position
is that of the command's last event over every aggregate it changed (``touched``), which is the
position the command answered the first time.

Each events table also carries a tamper-evidence chain (`infra.audit.chain` has the details):
a BEFORE INSERT trigger, in the inserting transaction, sets ``chain_hash`` = sha256(previous
hash of the aggregate || canonical bytes of the row) and ``chain_prev`` = the position of the
aggregate's previous event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal


@dataclass(frozen=True)
class IdempotencyRecord:
    """One command's key, the fingerprint of its request, the aggregate version it produced, and
    the last version of every aggregate it changed (the first answer's position is the highest
    notification id among those events)."""

    key: str
    fingerprint: str
    aggregate_id: UUID
    version: int
    touched: tuple[tuple[UUID, int], ...] = ()


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
                "recorded_at timestamptz NOT NULL DEFAULT now(), "
                "touched_ids uuid[], "
                "touched_versions bigint[])"
            ).format(table=table)
        )
        self._chain_statements = [
            *chain_statements(self.datastore.schema, self.events_table_name),
            touched_statement(self.datastore.schema, self.idempotency_table_name),
        ]
        self._insert_key = SQL(
            "INSERT INTO {table} (idempotency_key, fingerprint, aggregate_id, aggregate_version, "
            "touched_ids, touched_versions) VALUES (%s, %s, %s, %s, %s, %s)"
        ).format(table=table)
        events = Identifier(self.datastore.schema, self.events_table_name)
        # Rows written before ``touched`` existed fall back to the primary aggregate's event.
        self._select_outcome = SQL(
            "SELECT k.fingerprint, k.aggregate_id, k.aggregate_version, coalesce("
            "(SELECT max(e.notification_id) FROM {events} e "
            "JOIN unnest(k.touched_ids, k.touched_versions) AS t(id, version) "
            "ON e.originator_id = t.id AND e.originator_version = t.version), "
            "(SELECT e.notification_id FROM {events} e WHERE e.originator_id = k.aggregate_id "
            "AND e.originator_version = k.aggregate_version)) AS notification_id "
            "FROM {table} k WHERE k.idempotency_key = %s"
        ).format(table=table, events=events)

    def create_table(self) -> None:
        """The library's tables, then the chain (in its own short transaction).

        Every process that builds the applications runs this, and the library replaces its
        insert function each time: two processes doing so at once make PostgreSQL refuse one
        with "tuple concurrently updated". That is harmless (the other created everything), so
        it is retried a few times, briefly."""
        for attempt in range(CREATE_ATTEMPTS):
            try:
                super().create_table()
                with self.datastore.transaction(commit=True) as curs:
                    for statement in self._chain_statements:
                        curs.execute(statement, prepare=False)
                return
            except InternalError as exc:
                if "concurrently updated" not in str(exc) or attempt == CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

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
                [
                    (
                        r.key,
                        r.fingerprint,
                        r.aggregate_id,
                        r.version,
                        [aggregate_id for aggregate_id, _ in r.touched],
                        [version for _, version in r.touched],
                    )
                    for r in records
                ],
            )
        super()._insert_events(curs, stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def find_outcome(self, key: str) -> StoredOutcome | None:
        """Retried like the library's own reads: after a server restart the pool still holds
        dead connections, each of which fails once before it is replaced."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_outcome, (key,), prepare=True)
            row = curs.fetchone()
        if row is None or row["notification_id"] is None:
            return None
        return StoredOutcome(
            fingerprint=row["fingerprint"],
            aggregate_id=row["aggregate_id"],
            version=row["aggregate_version"],
            position=row["notification_id"],
        )


def touched_statement(schema: str, idempotency_table: str) -> Composed:
    """The ``touched`` columns on an idempotency table created before they existed (guarded,
    like the chain's columns, so that an up-to-date table takes no ACCESS EXCLUSIVE lock)."""
    return SQL(
        "DO $touched$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = {schema} "
        "AND table_name = {name} AND column_name = 'touched_ids') THEN "
        "SET LOCAL lock_timeout = '10s'; "
        "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS touched_ids uuid[], "
        "ADD COLUMN IF NOT EXISTS touched_versions bigint[]; "
        "END IF; "
        "EXCEPTION WHEN duplicate_column THEN NULL; "
        "END $touched$"
    ).format(
        schema=Literal(schema),
        name=Literal(idempotency_table),
        table=Identifier(schema, idempotency_table),
    )


CHAIN_FUNCTION_SUFFIX = "_chain_v1"
CREATE_ATTEMPTS = 5


def chain_statements(schema: str, events_table: str) -> list[Composed]:
    """The chain columns, the trigger function and the trigger, created only when missing.

    A guarded DO block, because ALTER TABLE takes an ACCESS EXCLUSIVE lock even when the column
    exists, and every process that builds the applications runs these statements. The canonical
    bytes are those of `infra.audit.chain.link` (which verify recomputes in Python).
    """
    table = Identifier(schema, events_table)
    function = Identifier(schema, events_table + CHAIN_FUNCTION_SUFFIX)
    create_function = SQL(
        "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $chain$ "
        "DECLARE prev_hash bytea := ''::bytea; prev_position bigint; "
        "BEGIN "
        "IF NEW.originator_version > 1 THEN "
        "SELECT p.chain_hash, p.notification_id INTO prev_hash, prev_position FROM {table} p "
        "WHERE p.originator_id = NEW.originator_id "
        "AND p.originator_version = NEW.originator_version - 1; "
        "END IF; "
        "NEW.chain_prev := prev_position; "
        "NEW.chain_hash := sha256(prev_hash || uuid_send(NEW.originator_id) "
        "|| int8send(NEW.originator_version) || int8send(NEW.notification_id) "
        "|| int8send(coalesce(prev_position, 0)) "
        "|| int4send(octet_length(convert_to(coalesce(NEW.topic, ''), 'UTF8'))) "
        "|| convert_to(coalesce(NEW.topic, ''), 'UTF8') || coalesce(NEW.state, ''::bytea)); "
        "RETURN NEW; "
        "END $chain$"
    ).format(function=function, table=table)
    guarded = SQL(
        "DO $guard$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = {schema} "
        "AND table_name = {name} AND column_name = 'chain_hash') THEN "
        "SET LOCAL lock_timeout = '10s'; "
        "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS chain_hash bytea, "
        "ADD COLUMN IF NOT EXISTS chain_prev bigint; "
        "END IF; "
        "IF to_regprocedure({signature}) IS NULL THEN "
        "EXECUTE {create_function}; "
        "END IF; "
        "IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = {regclass}::regclass "
        "AND tgname = {trigger}) THEN "
        "CREATE TRIGGER {trigger_id} BEFORE INSERT ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION {function}(); "
        "END IF; "
        "EXCEPTION WHEN duplicate_column OR duplicate_function OR duplicate_object "
        "OR unique_violation THEN NULL; "
        "END $guard$"
    ).format(
        schema=Literal(schema),
        name=Literal(events_table),
        table=table,
        signature=Literal(f"{schema}.{events_table}{CHAIN_FUNCTION_SUFFIX}()"),
        create_function=Literal(create_function.as_string(None)),
        regclass=Literal(f"{schema}.{events_table}"),
        trigger=Literal(f"{events_table}_chain"),
        trigger_id=Identifier(f"{events_table}_chain"),
        function=function,
    )
    return [guarded]


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
        last_events = set(record.touched) or {(record.aggregate_id, record.version)}
        positions = [
            notification.id
            for notification in self.select_notifications(start=None, limit=1_000_000)
            if (notification.originator_id, notification.originator_version) in last_events
        ]
        if not positions:
            return None
        return StoredOutcome(
            record.fingerprint, record.aggregate_id, record.version, max(positions)
        )


class IdempotentPostgresFactory(PostgresFactory):
    application_recorder_class = IdempotentPostgresRecorder


class IdempotentPopoFactory(POPOFactory):
    def application_recorder(self) -> IdempotentPopoRecorder:
        return IdempotentPopoRecorder()
