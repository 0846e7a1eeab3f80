"""The relay: tails one application's notification log (the outbox) and publishes it to Kafka.

Loop: select the notifications after the saved position → produce each envelope (acks=all,
key = aggregate id, idempotent producer, so one aggregate's events keep their order) → flush
→ save the position in PostgreSQL. A crash between flush and save re-publishes that batch:
delivery is at-least-once, and consumers deduplicate on ``event_id``.

Exactly one relay per log is active: it holds a PostgreSQL advisory lock on its own connection;
standbys retry the lock every ``lock_retry_s`` and take over when the holder's connection dies.
Notification ids are assigned under the event table's lock, so they become visible in order; a
rolled-back transaction leaves a gap that is simply never filled, and the relay reads past it.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import Counter, Gauge
from psycopg import sql

from commands.applications import ContextApplication
from infra.settings import Settings
from stream import envelope as env
from stream.producer import ConfluentProducer, EventProducer
from stream.topics import topic_for

log = logging.getLogger("iconmarket.relay")

PUBLISHED = Counter(
    "iconmarket_relay_events_published", "Events the relay published to Kafka.", ["log"]
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
POSITIONS_CHANNEL = "iconmarket_relay_positions"
FAULT_VAR = "ICONMARKET_RELAY_FAULT_KILL_AFTER_FLUSH"


def lock_key(log_name: str) -> int:
    """A stable 32-bit key for pg_advisory_lock, derived from the log's name."""
    return zlib.crc32(f"iconmarket-relay:{log_name}".encode())


class RelayPositions:
    """Where each relay got to, in PostgreSQL (``relay_positions``)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (log_name text PRIMARY KEY, "
                "position bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(POSITIONS_TABLE))
        )

    def load(self, log_name: str) -> int | None:
        row = self._conn.execute(
            sql.SQL("SELECT position FROM {} WHERE log_name = %s").format(
                sql.Identifier(POSITIONS_TABLE)
            ),
            (log_name,),
        ).fetchone()
        return None if row is None else int(row[0])

    def save(self, log_name: str, position: int) -> None:
        with self._conn.transaction():
            self._conn.execute(
                sql.SQL(
                    "INSERT INTO {} (log_name, position) VALUES (%s, %s) ON CONFLICT (log_name) "
                    "DO UPDATE SET position = EXCLUDED.position, updated_at = now()"
                ).format(sql.Identifier(POSITIONS_TABLE)),
                (log_name, position),
            )
            self._conn.execute(
                sql.SQL("SELECT pg_notify({}, %s)").format(sql.Literal(POSITIONS_CHANNEL)),
                (f"{log_name}:{position}",),
            )


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    position: int = 0
    active: bool = False


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
            with self._connect() as conn, self._connect() as listener:
                positions = RelayPositions(conn)
                recorder: Any = self.app.recorder
                listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(recorder.channel_name)))
                saved = positions.load(self.log_name)
                position = saved if saved is not None else (self.start_after or 0)
                producer = self.producer_factory(self.settings)
                self.stats.active, self.stats.position = True, position
                ACTIVE.labels(self.log_name).set(1)
                log.info(
                    "relay active",
                    extra={"log_name": self.log_name, "position": position, "topic": self.topic},
                )
                try:
                    while not stop.is_set():
                        lock_conn.execute("SELECT 1")  # the lock lives as long as this connection
                        published = self._publish_batch(producer, positions, position)
                        if published is None:
                            LAG.labels(self.log_name).set(0)
                            for _ in listener.notifies(timeout=self.idle_wait_s, stop_after=1):
                                pass
                            continue
                        position = published
                        LAG.labels(self.log_name).set(
                            max(0, (recorder.max_notification_id() or 0) - position)
                        )
                finally:
                    producer.close()
                    self.stats.active = False
                    ACTIVE.labels(self.log_name).set(0)

    def _publish_batch(
        self, producer: EventProducer, positions: RelayPositions, after: int
    ) -> int | None:
        recorder: Any = self.app.recorder
        notifications = recorder.select_notifications(
            start=after + 1, limit=self.batch_size, inclusive_of_start=True
        )
        if not notifications:
            return None
        for notification in notifications:
            envelope = env.to_envelope(
                self.app.context, notification.id, self.app.mapper.to_domain_event(notification)
            )
            producer.send(
                self.topic, env.key(envelope), env.encode(envelope), env.headers(envelope)
            )
        producer.flush()  # raises unless every message was acknowledged: then nothing is saved
        last = int(notifications[-1].id)
        self._maybe_fault()
        positions.save(self.log_name, last)
        PUBLISHED.labels(self.log_name).inc(len(notifications))
        POSITION.labels(self.log_name).set(last)
        self.stats.published += len(notifications)
        self.stats.batches += 1
        self.stats.position = last
        return last

    def _maybe_fault(self) -> None:
        """Fault injection for tests: die by SIGKILL between the flush and the position save."""
        if self._fault_rate and random.random() < self._fault_rate:  # noqa: S311
            os.kill(os.getpid(), signal.SIGKILL)


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
