"""The relay: tails one application's notification log (the outbox) and publishes it to Kafka.

Loop: select the notifications after the saved position → produce each envelope (acks=all,
key = aggregate id, idempotent producer, so one aggregate's events keep their order) → flush
→ save the position in PostgreSQL. A crash between flush and save re-publishes that batch:
delivery is at-least-once, and consumers deduplicate on ``event_id``.

Exactly one relay per log is active: it holds a PostgreSQL advisory lock on its own connection;
standbys retry the lock every ``lock_retry_s`` and take over when the holder's connection dies.
The position is saved on that same connection, in a transaction that first checks the lock is
still held (else :class:`LockLost`: the relay stops publishing and stands by again), and only
ever forward. Notification ids are assigned under the event table's lock, so they become visible
in order; a rolled-back transaction leaves a gap that is simply never filled, and the relay
reads past it.

Failures: Kafka being down or slow (a flush that times out or fails in transport) is retried
with capped backoff, forever, while the lag gauge keeps following the log; a flush that only
timed out is retried on the same producer, without sending its messages again. A notification
that can never be produced — its envelope cannot be built, or Kafka refuses it for its size — is
*parked*: recorded in ``relay_parked`` (in the transaction that moves the position past it),
counted in ``iconmarket_relay_parked_events`` and logged as an error; the relay goes on. Later
events of the same aggregate are still published (docs/operations.md says why).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import Counter, Gauge
from psycopg import sql

from commands.applications import ContextApplication
from commands.log import read_after
from infra.settings import Settings
from stream import envelope as env
from stream.dlq import describe_error
from stream.failures import Backoff, is_transient
from stream.metrics import counter
from stream.producer import ConfluentProducer, EventProducer, PublishError, refused_for_size
from stream.topics import topic_for
from stream.watermark import PRUNE_EVERY, create_marks_table, record_mark

log = logging.getLogger("iconmarket.relay")

PUBLISHED = Counter(
    "iconmarket_relay_events_published", "Events the relay published to Kafka.", ["log"]
)
PARKED = counter(
    "iconmarket_relay_parked_events",
    "Notifications the relay could not produce for good and parked in relay_parked.",
    ["log"],
)
PUBLISH_FAILURES = counter(
    "iconmarket_relay_publish_failures",
    "Batches the relay failed to publish and is retrying (Kafka down or slow).",
    ["log"],
)
POSITION = Gauge(
    "iconmarket_relay_position",
    "Last position published and saved.",
    ["log"],
    multiprocess_mode="livemax",
)
LAG = Gauge(
    "iconmarket_relay_lag_events",
    "Events committed but not yet published.",
    ["log"],
    multiprocess_mode="livemax",
)
ACTIVE = Gauge(
    "iconmarket_relay_active",
    "1 while this process holds the log's relay lock.",
    ["log"],
    multiprocess_mode="livesum",
)

POSITIONS_TABLE = "relay_positions"
PARKED_TABLE = "relay_parked"
POSITIONS_CHANNEL = "iconmarket_relay_positions"
FAULT_VAR = "ICONMARKET_RELAY_FAULT_KILL_AFTER_FLUSH"


def lock_key(log_name: str) -> int:
    """A stable 32-bit key for pg_advisory_lock, derived from the log's name."""
    return zlib.crc32(f"iconmarket-relay:{log_name}".encode())


class LockLost(RuntimeError):
    """This connection no longer holds the log's relay lock: another relay may be active."""


def holds_lock(conn: psycopg.Connection[Any], log_name: str) -> bool:
    """Whether ``conn``'s session holds the relay lock of ``log_name`` (a one-bigint advisory
    lock shows in pg_locks as classid = high half, objid = low half, objsubid = 1)."""
    row = conn.execute(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
        "AND granted AND classid = 0 AND objid::bigint = %s AND objsubid = 1",
        (lock_key(log_name),),
    ).fetchone()
    return row is not None


@dataclass(frozen=True)
class ParkedNotification:
    """A notification the relay could not produce and moved past."""

    notification_id: int
    aggregate_id: str
    aggregate_version: int
    event_topic: str
    error: str


@dataclass(frozen=True)
class ParkedEntry(ParkedNotification):
    """A row of ``relay_parked``."""

    log_name: str
    kafka_topic: str
    parked_at: Any

    def summary(self) -> dict[str, Any]:
        return {
            "log_name": self.log_name,
            "position": self.notification_id,
            "aggregate_id": self.aggregate_id,
            "aggregate_version": self.aggregate_version,
            "event_topic": self.event_topic,
            "kafka_topic": self.kafka_topic,
            "error": self.error,
            "parked_at": self.parked_at.isoformat(),
        }


class RelayPositions:
    """Where each relay got to (``relay_positions``) and what it parked (``relay_parked``)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._saves = 0
        with conn.transaction():  # CREATE … IF NOT EXISTS is not safe against a concurrent one
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (POSITIONS_TABLE,))
            self._create_tables()

    def _create_tables(self) -> None:
        conn = self._conn
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (log_name text PRIMARY KEY, "
                "position bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(POSITIONS_TABLE))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (log_name text NOT NULL, "
                "notification_id bigint NOT NULL, aggregate_id text NOT NULL, "
                "aggregate_version bigint NOT NULL, event_topic text NOT NULL, "
                "kafka_topic text NOT NULL, error text NOT NULL, "
                "parked_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (log_name, notification_id))"
            ).format(sql.Identifier(PARKED_TABLE))
        )
        create_marks_table(conn)

    def load(self, log_name: str) -> int | None:
        row = self._conn.execute(
            sql.SQL("SELECT position FROM {} WHERE log_name = %s").format(
                sql.Identifier(POSITIONS_TABLE)
            ),
            (log_name,),
        ).fetchone()
        return None if row is None else int(row[0])

    def save(
        self,
        log_name: str,
        position: int,
        parked: Sequence[ParkedNotification] = (),
        kafka_topic: str = "",
        ends: Mapping[tuple[str, int], int] | None = None,
    ) -> bool:
        """Move ``log_name``'s position forward to ``position`` and record what was parked on
        the way and, given the ``ends`` Kafka acknowledged, the watermark's mark of
        ``position`` (`stream.watermark`), in one transaction. Must run on the connection that
        holds the relay lock: raises :class:`LockLost` (storing nothing) if it does not.
        Returns False, leaving the stored position as it is, when that is already at or past
        ``position``."""
        with self._conn.transaction():
            if not holds_lock(self._conn, log_name):
                raise LockLost(f"the relay lock of {log_name!r} is not held by this connection")
            if parked:
                with self._conn.cursor() as cursor:
                    cursor.executemany(
                        sql.SQL(
                            "INSERT INTO {} (log_name, notification_id, aggregate_id, "
                            "aggregate_version, event_topic, kafka_topic, error) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                        ).format(sql.Identifier(PARKED_TABLE)),
                        [
                            (
                                log_name,
                                p.notification_id,
                                p.aggregate_id,
                                p.aggregate_version,
                                p.event_topic,
                                kafka_topic,
                                p.error,
                            )
                            for p in parked
                        ],
                    )
            moved = self._conn.execute(
                sql.SQL(
                    "INSERT INTO {table} (log_name, position) VALUES (%s, %s) "
                    "ON CONFLICT (log_name) DO UPDATE SET position = EXCLUDED.position, "
                    "updated_at = now() WHERE {table}.position < EXCLUDED.position "
                    "RETURNING position"
                ).format(table=sql.Identifier(POSITIONS_TABLE)),
                (log_name, position),
            ).fetchone()
            if moved is not None and ends is not None:
                self._saves += 1
                record_mark(
                    self._conn, log_name, position, ends, prune=self._saves % PRUNE_EVERY == 0
                )
            if moved is not None:
                self._conn.execute(
                    sql.SQL("SELECT pg_notify({}, %s)").format(sql.Literal(POSITIONS_CHANNEL)),
                    (f"{log_name}:{position}",),
                )
        return moved is not None

    def parked(self, log_name: str | None = None) -> list[ParkedEntry]:
        """The parked notifications (of one log, or all), oldest position first."""
        where = sql.SQL("WHERE log_name = %s" if log_name else "")
        rows = self._conn.execute(
            sql.SQL(
                "SELECT notification_id, aggregate_id, aggregate_version, event_topic, error, "
                "log_name, kafka_topic, parked_at FROM {} {} ORDER BY log_name, notification_id"
            ).format(sql.Identifier(PARKED_TABLE), where),
            (log_name,) if log_name else (),
        ).fetchall()
        return [ParkedEntry(*row) for row in rows]


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    parked: int = 0
    retries: int = 0
    position: int = 0
    active: bool = False


@dataclass(frozen=True)
class _Message:
    notification_id: int
    aggregate_id: str
    aggregate_version: int
    event_topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class Relay:
    """Publishes one application's log to its Kafka topic; ``run`` until ``stop`` is set."""

    def __init__(
        self,
        app: ContextApplication,
        settings: Settings,
        *,
        topic: str | None = None,
        log_name: str | None = None,
        start_after: int | None = None,
        batch_size: int = 2000,
        idle_wait_s: float = 1.0,
        lock_retry_s: float = 1.0,
        flush_timeout_s: float = 30.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        producer_factory: Callable[[Settings], EventProducer] = ConfluentProducer,
    ) -> None:
        self.app = app
        self.settings = settings
        self.topic = topic or topic_for(app.context)
        self.log_name = log_name or app.context
        self.start_after = start_after
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self.lock_retry_s = lock_retry_s
        self.flush_timeout_s = flush_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.producer_factory = producer_factory
        self.stats = RelayStats()
        self._fault_rate = float(os.environ.get(FAULT_VAR, "0") or 0)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.settings.postgres_dsn, autocommit=True)

    def _acquire(self, lock_conn: psycopg.Connection[Any], stop: threading.Event) -> bool:
        key = lock_key(self.log_name)
        announced = False
        while not stop.is_set():
            row = lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row is not None and row[0]:
                return True
            if not announced:
                log.info("relay standby", extra={"log_name": self.log_name})
                announced = True
            stop.wait(self.lock_retry_s)
        return False

    def run(self, stop: threading.Event) -> None:
        """Wait for the lock, then publish until ``stop``; reconnect after failures."""
        while not stop.is_set():
            try:
                self._run_once(stop)
            except LockLost:
                log.warning("relay lost its lock; standing by", extra={"log_name": self.log_name})
                self.stats.active = False
            except Exception:
                log.exception(
                    "relay failed; restarting from the saved position",
                    extra={"log_name": self.log_name},
                )
                self.stats.active = False
                stop.wait(1.0)

    def _run_once(self, stop: threading.Event) -> None:
        with self._connect() as lock_conn:
            if not self._acquire(lock_conn, stop):
                return
            with self._connect() as listener:
                positions = RelayPositions(lock_conn)  # saves only while this session holds it
                recorder: Any = self.app.recorder
                listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(recorder.channel_name)))
                saved = positions.load(self.log_name)
                position = saved if saved is not None else (self.start_after or 0)
                self.stats.active, self.stats.position = True, position
                ACTIVE.labels(self.log_name).set(1)
                log.info(
                    "relay active",
                    extra={"log_name": self.log_name, "position": position, "topic": self.topic},
                )
                try:
                    self._publish_until(stop, lock_conn, listener, positions, position)
                finally:
                    self.stats.active = False
                    ACTIVE.labels(self.log_name).set(0)

    def _publish_until(
        self,
        stop: threading.Event,
        lock_conn: psycopg.Connection[Any],
        listener: psycopg.Connection[Any],
        positions: RelayPositions,
        position: int,
    ) -> None:
        backoff = Backoff(self.retry_initial_s, 2.0, self.retry_max_s)
        failures = 0
        producer = self.producer_factory(self.settings)
        try:
            while not stop.is_set():
                if not holds_lock(lock_conn, self.log_name):
                    raise LockLost(f"the relay lock of {self.log_name!r} was released")
                try:
                    published = self._publish_batch(producer, positions, position, stop)
                except (LockLost, psycopg.Error):
                    raise  # stand by, or reconnect to PostgreSQL and re-acquire the lock
                except Exception as exc:  # Kafka down or slow: retry this batch
                    failures += 1
                    self._retry_later(exc, position, backoff.delay(failures), stop)
                    producer.close()
                    producer = self.producer_factory(self.settings)
                    continue
                if published is None:
                    LAG.labels(self.log_name).set(0)
                    for _ in listener.notifies(timeout=self.idle_wait_s, stop_after=1):
                        pass
                    continue
                failures = 0
                position = published
                self._set_lag(position)
        finally:
            producer.close()

    def _retry_later(
        self, error: BaseException, position: int, delay: float, stop: threading.Event
    ) -> None:
        PUBLISH_FAILURES.labels(self.log_name).inc()
        self.stats.retries += 1
        self._set_lag(position)
        log.warning(
            "relay could not publish; retrying",
            extra={
                "log_name": self.log_name,
                "position": position,
                "retry_in_s": delay,
                "error": str(error),
            },
        )
        stop.wait(delay)

    def _set_lag(self, position: int) -> None:
        recorder: Any = self.app.recorder
        LAG.labels(self.log_name).set(max(0, (recorder.max_notification_id() or 0) - position))

    def _publish_batch(
        self,
        producer: EventProducer,
        positions: RelayPositions,
        after: int,
        stop: threading.Event,
    ) -> int | None:
        notifications = read_after(self.app.recorder, after, self.batch_size)
        if not notifications:
            return None
        messages, parked = self._build(notifications)
        parked += self._produce(producer, messages, after, stop)
        ends = producer.take_ends()
        last = int(notifications[-1].id)
        self._maybe_fault()
        parked.sort(key=lambda p: p.notification_id)
        positions.save(self.log_name, last, parked, self.topic, ends)
        self._report_parked(parked)
        published = len(notifications) - len(parked)
        PUBLISHED.labels(self.log_name).inc(published)
        POSITION.labels(self.log_name).set(last)
        self.stats.published += published
        self.stats.batches += 1
        self.stats.position = last
        return last

    def _build(
        self, notifications: Sequence[Any]
    ) -> tuple[list[_Message], list[ParkedNotification]]:
        messages: list[_Message] = []
        parked: list[ParkedNotification] = []
        for notification in notifications:
            try:
                envelope = env.to_envelope(
                    self.app.context,
                    notification.id,
                    self.app.mapper.to_domain_event(notification),
                )
                messages.append(
                    _Message(
                        int(notification.id),
                        str(notification.originator_id),
                        int(notification.originator_version),
                        str(notification.topic),
                        env.key(envelope),
                        env.encode(envelope),
                        env.headers(envelope),
                    )
                )
            except Exception as exc:
                if is_transient(exc):
                    raise
                parked.append(_parked(notification, exc))  # it can never be published
        return messages, parked

    def _produce(
        self,
        producer: EventProducer,
        messages: list[_Message],
        after: int,
        stop: threading.Event,
    ) -> list[ParkedNotification]:
        """Send and flush ``messages``; returns those Kafka refused for their size. When a
        flush fails for size, the batch is sent again one message per flush to find which."""
        refused = self._send_all(producer, messages)
        try:
            self._flush(producer, after, stop)
        except PublishError as exc:
            if not refused_for_size(exc):
                raise
            return self._produce_one_by_one(producer, messages, refused)
        return list(refused.values())

    def _flush(self, producer: EventProducer, after: int, stop: threading.Event) -> None:
        """Flush until Kafka acknowledged every message sent; raises once one failed.

        A flush that only timed out (Kafka down or slow, no message failed yet) is waited out on
        this same producer, which keeps retrying its queued messages idempotently: sending them
        again, or through a new producer, published each of them twice once Kafka was back.
        """
        backoff = Backoff(self.retry_initial_s, 2.0, self.retry_max_s)
        waits = 0
        while True:
            try:
                producer.flush(self.flush_timeout_s)
                return
            except PublishError as exc:
                if exc.codes or stop.is_set():
                    raise
                waits += 1
                self._retry_later(exc, after, backoff.delay(waits), stop)

    def _send_all(
        self, producer: EventProducer, messages: list[_Message]
    ) -> dict[int, ParkedNotification]:
        refused: dict[int, ParkedNotification] = {}
        for message in messages:
            try:
                producer.send(self.topic, message.key, message.value, message.headers)
            except Exception as exc:
                if not refused_for_size(exc):
                    raise
                refused[message.notification_id] = _parked_message(message, exc)
        return refused

    def _produce_one_by_one(
        self,
        producer: EventProducer,
        messages: list[_Message],
        refused: dict[int, ParkedNotification],
    ) -> list[ParkedNotification]:
        log.warning(
            "Kafka refused a record batch for its size; sending one message per flush",
            extra={"log_name": self.log_name, "messages": len(messages)},
        )
        for message in messages:
            if message.notification_id in refused:
                continue
            try:
                producer.send(self.topic, message.key, message.value, message.headers)
                producer.flush(self.flush_timeout_s)
            except Exception as exc:
                if not refused_for_size(exc):
                    raise
                refused[message.notification_id] = _parked_message(message, exc)
        return list(refused.values())

    def _report_parked(self, parked: list[ParkedNotification]) -> None:
        for entry in parked:
            PARKED.labels(self.log_name).inc()
            self.stats.parked += 1
            log.error(
                "relay parked a notification it cannot publish",
                extra={
                    "log_name": self.log_name,
                    "position": entry.notification_id,
                    "aggregate_id": entry.aggregate_id,
                    "aggregate_version": entry.aggregate_version,
                    "error": entry.error,
                },
            )

    def _maybe_fault(self) -> None:
        """Fault injection for tests: die by SIGKILL between the flush and the position save."""
        if self._fault_rate and random.random() < self._fault_rate:  # noqa: S311
            os.kill(os.getpid(), signal.SIGKILL)


def _parked(notification: Any, error: BaseException) -> ParkedNotification:
    return ParkedNotification(
        int(notification.id),
        str(notification.originator_id),
        int(notification.originator_version),
        str(notification.topic),
        describe_error(error),
    )


def _parked_message(message: _Message, error: BaseException) -> ParkedNotification:
    return ParkedNotification(
        message.notification_id,
        message.aggregate_id,
        message.aggregate_version,
        message.event_topic,
        describe_error(error),
    )


def run_relays(relays: list[Relay], stop: threading.Event) -> None:
    """Run several relays (one per log) in threads until ``stop``."""
    threads = [
        threading.Thread(
            target=relay.run, args=(stop,), name=f"relay-{relay.log_name}", daemon=True
        )
        for relay in relays
    ]
    for thread in threads:
        thread.start()
    while not stop.is_set():
        stop.wait(0.5)
    for thread in threads:
        thread.join(timeout=15)
