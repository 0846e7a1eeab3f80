"""What the fault tests share: a stack service frozen with SIGSTOP (always resumed), a relay in a
thread, a throwaway event store, a private PostgreSQL cluster to restart, and exact reads of what
reached a topic."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from infra.audit.scratch import scratch_database
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from infra.stack import manager
from infra.stack.base import StackContext, StackError, run_as_service_user
from infra.stack.postgres import BIN, Postgres
from stream.relay import Relay
from tests.support import free_port

Partition = tuple[str, int]


def stack_pid(settings: Settings, service: str) -> int:
    """The pid of the local stack's ``service`` (postgres, redis, kafka, opensearch, s3)."""
    [chosen] = manager.select([service])
    pid = manager.running_pid(chosen, StackContext.from_settings(settings))
    assert pid is not None, f"the stack's {service} is not running (make test runs `stack up`)"
    return pid


@dataclass
class Pause:
    """A service frozen since ``began`` (monotonic seconds)."""

    service: str
    pid: int
    began: float

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def left(self, duration_s: float) -> float:
        return max(0.0, duration_s - self.elapsed())

    def hold(self, duration_s: float) -> None:
        """Keep the service frozen until it has been for ``duration_s``: the fault's length,
        never a wait for a result."""
        time.sleep(self.left(duration_s))


@contextlib.contextmanager
def paused(settings: Settings, service: str) -> Iterator[Pause]:
    """Freeze the stack's ``service`` with SIGSTOP; SIGCONT it however the block ends."""
    pid = stack_pid(settings, service)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield Pause(service, pid, time.monotonic())
    finally:
        os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def relaying(relay: Relay) -> Iterator[Relay]:
    """``relay`` publishing in a thread until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), name="test-relay", daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the relay did not stop"


@contextlib.contextmanager
def scratch_container(settings: Settings, prefix: str) -> Iterator[Container]:
    """A container on an event store of this test's own (dropped afterwards): its logs hold only
    this test's events, so a replay of their whole history is small and exact."""
    with scratch_database(settings, prefix=prefix) as scratch_settings:
        built = bootstrap(scratch_settings)
        try:
            yield built
        finally:
            built.close()


@dataclass(frozen=True)
class PrivateCluster:
    """A PostgreSQL cluster of one test's own, run by the stack's binaries as the stack's user;
    ``settings`` point at it. Restarting it disturbs nobody else's tests."""

    settings: Settings
    context: StackContext

    @property
    def data_dir(self) -> Path:
        return Postgres().data_dir(self.context)

    @property
    def log_file(self) -> Path:
        return Postgres().log_file(self.context)

    def pg_ctl(self, *args: str) -> str:
        """``pg_ctl -D <data> *args`` as the account the stack runs PostgreSQL as."""
        return run_as_service_user(
            self.context, [str(BIN / "pg_ctl"), "-D", str(self.data_dir), *args]
        )

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def execute(self, statement: str) -> list[tuple[Any, ...]]:
        """One statement (autocommit, as the cluster's superuser); its rows, if any."""
        import psycopg

        with psycopg.connect(self.settings.postgres_dsn, autocommit=True) as conn:
            cursor = conn.execute(statement)  # type: ignore[call-overload]
            return list(cursor.fetchall()) if cursor.description else []

    def withhold_opted_in_acknowledgements(self) -> None:
        """Make the server's ``synchronous_commit`` ``local`` and name a synchronous standby that
        does not exist: a transaction that sets ``synchronous_commit`` to ``on`` is then flushed
        to disk but its COMMIT is never answered. A kill meanwhile loses the acknowledgement of
        a commit that happened: the ambiguous commit, for certain rather than by luck. Kept by
        a restart (``postgresql.auto.conf``), harmless to transactions that do not opt in."""
        self.execute("ALTER SYSTEM SET synchronous_standby_names = 'fault_test_no_such_standby'")
        self.execute("ALTER SYSTEM SET synchronous_commit = 'local'")
        self.execute("SELECT pg_reload_conf()")

    def withheld(self) -> list[str]:
        """The transaction ids (xmin of what they wrote) of commits waiting for the standby."""
        rows = self.execute(
            "SELECT backend_xid::text FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
        )
        return [row[0] for row in rows]

    def restart_immediate(self) -> None:
        """``pg_ctl restart -m immediate``: every backend is killed mid-statement (no
        checkpoint, crash recovery on start); returns once the new server accepts connections.
        The new server logs to the file (its output must not hold pg_ctl's pipe open)."""
        self.pg_ctl("restart", "-m", "immediate", "-w", "-t", "60", "-l", str(self.log_file))


@contextlib.contextmanager
def private_postgres(settings: Settings) -> Iterator[PrivateCluster]:
    """A fresh cluster (initdb into a temporary dir, a free loopback port) started with the
    stack's own server options, with the app's database created; always stopped and removed."""
    root = Path(tempfile.mkdtemp(prefix="iconmarket-pg-"))
    own = dataclasses.replace(settings, postgres_port=free_port(), state_dir=str(root))
    context = StackContext.from_settings(own)
    service = Postgres()
    cluster = PrivateCluster(own, context)
    try:
        context.own(root)
        service.prepare(context)
        options = service.command(context)[3:]  # past "postgres -D <data>"
        cluster.pg_ctl(
            "start", "-w", "-t", "60", "-l", str(cluster.log_file), "-o", shlex.join(options)
        )
        service.after_ready(context)
        yield cluster
    finally:
        if (cluster.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(StackError):
                cluster.pg_ctl("stop", "-m", "immediate", "-w", "-t", "60")
        shutil.rmtree(root, ignore_errors=True)


def sample(name: str, **labels: str) -> float:
    """A sample of this process's Prometheus registry (0 when the series does not exist)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def end_offsets(settings: Settings, topic: str) -> dict[Partition, int]:
    """Each non-empty partition's end offset."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(partitions)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items() if offset}


def read_topic(settings: Settings, topic: str, timeout_s: float = 30) -> list[Any]:
    """Every message of ``topic`` up to its current end offsets (duplicates included)."""
    from kafka import KafkaConsumer, TopicPartition

    ends = end_offsets(settings, topic)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=1_000,
    )
    messages: list[Any] = []
    try:
        consumer.assign([TopicPartition(t, p) for t, p in ends])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        reached: dict[Partition, int] = {}
        while any(reached.get(tp, 0) < end for tp, end in ends.items()):
            assert time.monotonic() < deadline, f"read {reached} of {ends} in {timeout_s}s"
            for message in consumer:
                tp = (message.topic, message.partition)
                if message.offset < ends[tp]:
                    messages.append(message)
                reached[tp] = max(reached.get(tp, 0), message.offset + 1)
                if all(reached.get(p, 0) >= end for p, end in ends.items()):
                    break
    finally:
        consumer.close()
    return messages
