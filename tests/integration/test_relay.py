"""The relay on real PostgreSQL and Kafka: nothing lost under kill -9, one active relay with a
standby that takes over, gaps neither stall nor skip, secrets never published; the position is
saved only under the lock and only forward; what can never be produced is parked, not retried
forever; the lag keeps following the log while Kafka is unreachable."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from kafka import KafkaConsumer
from kafka.admin import NewTopic
from prometheus_client import REGISTRY

from commands import messages as m
from domain.family import Family
from infra.audit.scratch import scratch_database
from infra.bootstrap import Container, bootstrap
from infra.cli import main
from infra.settings import Settings
from stream.envelope import decode
from stream.relay import (
    FAULT_VAR,
    LAG,
    LockLost,
    ParkedNotification,
    Relay,
    RelayPositions,
    lock_key,
)
from tests.support import (
    ctx,
    eventually,
    validate_message,
    wait_for_saved_position,
    wait_for_topic_leaders,
)


@pytest.fixture
def topic(container: Container) -> Iterator[str]:
    name = f"test.relay.{uuid.uuid4().hex[:10]}"
    admin = container.kafka_admin()
    admin.create_topics([NewTopic(name, 3, 1)], timeout_ms=10_000)
    wait_for_topic_leaders(container.settings.kafka_bootstrap, name, 3)
    yield name
    admin.delete_topics([name])
    admin.close()


def _head(container: Container, context: str = "catalog") -> int:
    return container.applications.by_context(context).recorder.max_notification_id() or 0


def _committed_positions(settings: Settings, table: str, after: int, upto: int) -> list[int]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute(
            f"SELECT notification_id FROM {table} "  # noqa: S608 - a fixed table name
            "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id",
            (after, upto),
        ).fetchall()
    return [int(row[0]) for row in rows]


def _consume(settings: Settings, topic: str, expected: set[int], timeout_s: float) -> list[Any]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    messages = []
    seen: set[int] = set()
    try:
        for message in consumer:
            validate_message(message.value)  # every message seen matches its published schema
            messages.append(message)
            seen.add(decode(message.value).position)
            if expected <= seen:
                break
    finally:
        consumer.close()
    return messages


def _relay_process(
    topic: str, log_name: str, start_after: int, fault_rate: float = 0.0
) -> subprocess.Popen[bytes]:
    env = {**os.environ, FAULT_VAR: str(fault_rate), "ICONMARKET_LOG_LEVEL": "INFO"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "relay",
            "--context",
            "catalog",
            "--topic",
            topic,
            "--log-name",
            log_name,
            "--start-after",
            str(start_after),
            "--batch-size",
            "200",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        bufsize=0,
    )


def _wait_for_log(proc: subprocess.Popen[bytes], needle: str, timeout_s: float) -> bool:
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                return False
            line = proc.stderr.readline().decode(errors="replace")
            if not line:
                return False
            if needle in line:
                return True
    finally:
        selector.close()
    return False


def _check_order_and_duplicates(messages: list[Any]) -> tuple[int, int]:
    """Per aggregate: first occurrences come in version order 1, 2, 3…, all in one partition;
    every repeat is a byte-identical redelivery. Returns (distinct events, duplicates)."""
    first_seen: dict[str, bytes] = {}
    versions: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    duplicates = 0
    for message in messages:
        envelope = decode(message.value)
        partitions[envelope.aggregate_id].add(message.partition)
        if envelope.event_id in first_seen:
            assert first_seen[envelope.event_id] == message.value
            duplicates += 1
            continue
        first_seen[envelope.event_id] = message.value
        versions[envelope.aggregate_id].append(envelope.aggregate_version)
    for aggregate_id, seen in versions.items():
        assert seen == sorted(seen), f"{aggregate_id} out of order: {seen}"
        assert len(partitions[aggregate_id]) == 1
    return len(first_seen), duplicates


def test_kill_9_during_a_stream_of_commands_loses_nothing(
    container: Container, settings: Settings, topic: str
) -> None:
    head = _head(container)
    owner = f"relay-{uuid.uuid4().hex[:6]}"
    done = threading.Event()

    def write() -> None:
        bus = container.bus
        ids = [
            bus.execute(m.CreateFamily(name=f"F{n}"), ctx(owner, "contributor")).aggregate_id
            for n in range(150)
        ]
        futures = [
            bus.submit(
                m.UpdateFamily(family_id=family_id, name=f"F{n}-{k}"), ctx(owner, "contributor")
            )
            for k in range(12)
            for n, family_id in enumerate(ids)
        ]
        for future in futures:
            future.result()
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    rng = random.Random(7)
    restarts = external_kills = 0
    proc = _relay_process(topic, topic, head, fault_rate=0.15)
    try:
        while not done.is_set():
            try:
                proc.wait(timeout=rng.uniform(0.2, 0.8))
            except subprocess.TimeoutExpired:
                if external_kills < 6:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    external_kills += 1
            if proc.poll() is not None:
                restarts += 1
                proc = _relay_process(topic, topic, head, fault_rate=0.15)
        writer.join()
        final = _head(container)
        # The injected faults keep killing it now and then; restart until it has caught up.
        while wait_for_saved_position(settings, topic, final, timeout_s=10) < final:
            if proc.poll() is not None:
                restarts += 1
                proc = _relay_process(topic, topic, head, fault_rate=0.15)
    finally:
        proc.kill()
        proc.wait()
    expected = set(_committed_positions(settings, "catalog_events", head, final))
    messages = _consume(settings, topic, expected, timeout_s=30)
    received = {decode(message.value).position for message in messages}
    assert expected - received == set()
    distinct, duplicates = _check_order_and_duplicates(messages)
    assert distinct >= 150 * 13
    assert restarts >= 3
    assert external_kills >= 1
    print(f"restarts={restarts} external_kills={external_kills} duplicates={duplicates}")


def test_only_one_relay_publishes_and_a_standby_takes_over(
    container: Container, settings: Settings, topic: str
) -> None:
    head = _head(container)
    owner = f"relay-{uuid.uuid4().hex[:6]}"
    first = _relay_process(topic, topic, head)
    assert _wait_for_log(first, "relay active", timeout_s=30)
    second = _relay_process(topic, topic, head)
    try:
        assert _wait_for_log(second, "relay standby", timeout_s=30)
        before = [
            container.bus.execute(m.CreateFamily(name=f"A{n}"), ctx(owner, "contributor"))
            for n in range(40)
        ]
        assert wait_for_saved_position(settings, topic, before[-1].position, 30) >= (
            before[-1].position
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        assert _wait_for_log(second, "relay active", timeout_s=20)
        takeover_s = time.monotonic() - killed_at
        after = [
            container.bus.execute(m.CreateFamily(name=f"B{n}"), ctx(owner, "contributor"))
            for n in range(40)
        ]
        assert wait_for_saved_position(settings, topic, after[-1].position, 30) >= (
            after[-1].position
        )
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()
    expected = {r.position for r in before + after}
    messages = _consume(settings, topic, expected, timeout_s=30)
    received = [decode(message.value).position for message in messages]
    assert expected <= set(received)
    assert len(received) == len(set(received))  # the standby never published alongside
    assert takeover_s < 10


def test_a_gap_from_a_rolled_back_insert_neither_stalls_nor_skips(
    container: Container, settings: Settings, topic: str
) -> None:
    apps = container.applications
    head = _head(container)
    relay = Relay(
        apps.catalog, settings, topic=topic, log_name=topic, start_after=head, idle_wait_s=0.2
    )
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        owner = f"gap-{uuid.uuid4().hex[:6]}"
        family = Family.create(owner_id=owner, name="G", actor=owner, correlation_id="c")
        apps.catalog.save(family)
        stale = apps.catalog.repository.get(family.id)
        fresh = apps.catalog.repository.get(family.id)
        fresh.publish(actor=owner, correlation_id="c")
        apps.catalog.save(fresh)
        stale.update_details(
            name="H", description="", categories=(), tags=(), actor=owner, correlation_id="c"
        )
        with pytest.raises(IntegrityError):
            apps.catalog.save(stale)  # rolled back: its notification id is never used
        after = container.bus.execute(
            m.CreateFamily(name="after the gap"), ctx(owner, "contributor")
        )
        assert wait_for_saved_position(settings, topic, after.position, 20) >= after.position
    finally:
        stop.set()
        thread.join(timeout=20)
    committed = _committed_positions(settings, "catalog_events", head, after.position)
    assert committed[-1] == after.position
    gaps = [b for a, b in itertools.pairwise(committed) if b != a + 1]
    assert gaps, "the rolled-back insert should have left a gap in the notification ids"
    messages = _consume(settings, topic, set(committed), timeout_s=20)
    assert sorted({decode(message.value).position for message in messages}) == committed


def test_identity_events_never_carry_secrets(
    container: Container, settings: Settings, topic: str
) -> None:
    head = _head(container, "identity")
    email = f"secret-{uuid.uuid4().hex[:8]}@example.com"
    result = container.bus.execute(
        m.RegisterAccount(email=email, password="a very secret password"), ctx("anonymous")
    )
    relay = Relay(
        container.applications.identity, settings, topic=topic, log_name=topic, start_after=head
    )
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        assert wait_for_saved_position(settings, topic, result.position, 20) >= result.position
    finally:
        stop.set()
        thread.join(timeout=20)
    messages = _consume(settings, topic, {result.position}, timeout_s=20)
    mine = [m for m in messages if decode(m.value).position == result.position]
    assert len(mine) == 1
    payload = json.loads(mine[0].value)
    assert payload["type"] == "Account.Registered"
    assert payload["data"] == {"roles": ["customer"]}
    assert email.encode() not in mine[0].value
    assert b"argon2" not in mine[0].value
    assert dict(mine[0].headers)["event_type"] == b"Account.Registered"


def _parked_rows(settings: Settings, log_name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        return [
            (p.notification_id, p.aggregate_id, p.aggregate_version, p.kafka_topic)
            for p in RelayPositions(conn).parked(log_name)
        ]


def test_a_position_is_saved_only_under_the_lock_and_only_forward(settings: Settings) -> None:
    log_name = f"test.lock.{uuid.uuid4().hex[:10]}"
    parked = [ParkedNotification(3, str(uuid.uuid4()), 1, "t", "boom")]
    with (
        psycopg.connect(settings.postgres_dsn, autocommit=True) as holder,
        psycopg.connect(settings.postgres_dsn, autocommit=True) as other,
    ):
        mine, theirs = RelayPositions(holder), RelayPositions(other)
        with pytest.raises(LockLost):
            mine.save(log_name, 5, parked)  # nobody holds the lock yet
        assert (mine.load(log_name), _parked_rows(settings, log_name)) == (None, [])

        assert holder.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(log_name),)).fetchone()
        assert mine.save(log_name, 10) is True
        assert mine.save(log_name, 7) is False  # never backwards
        assert mine.save(log_name, 10) is False
        assert mine.load(log_name) == 10

        with pytest.raises(LockLost):
            theirs.save(log_name, 20, parked)  # another session, while the lock is held
        assert (theirs.load(log_name), _parked_rows(settings, log_name)) == (10, [])

        holder.execute("SELECT pg_advisory_unlock(%s)", (lock_key(log_name),))
        with pytest.raises(LockLost):
            mine.save(log_name, 30, parked)  # the lock is gone: the former holder is refused too
        assert (mine.load(log_name), _parked_rows(settings, log_name)) == (10, [])
        holder.execute("DELETE FROM relay_positions WHERE log_name = %s", (log_name,))


@pytest.fixture(scope="module")
def scratch() -> Iterator[Container]:
    """A container on a throwaway database: these tests write events no other relay may see."""
    from infra.settings import load_settings

    with scratch_database(load_settings(), prefix="iconmarket_relay") as scratch_settings:
        built = bootstrap(scratch_settings)
        try:
            yield built
        finally:
            built.close()


@pytest.fixture
def small_topic(scratch: Container) -> Iterator[str]:
    """One partition (so the published order is the send order) of at most 64 KiB per batch."""
    name = f"test.relay.small.{uuid.uuid4().hex[:10]}"
    admin = scratch.kafka_admin()
    admin.create_topics(
        [NewTopic(name, 1, 1, topic_configs={"max.message.bytes": str(64 * 1024)})],
        timeout_ms=10_000,
    )
    wait_for_topic_leaders(scratch.settings.kafka_bootstrap, name, 1)
    yield name
    admin.delete_topics([name])
    admin.close()


def _family(scratch: Container, name: str, description: str = "") -> tuple[int, str]:
    """Save a new family directly (no command limits on its size): its position and id."""
    owner = "relay-parking"
    family = Family.create(
        owner_id=owner, name=name, description=description, actor=owner, correlation_id="c"
    )
    recordings = scratch.applications.catalog.save(family)
    return int(recordings[-1].notification.id), str(family.id)


def _parked_count(log_name: str) -> float:
    value = REGISTRY.get_sample_value("iconmarket_relay_parked_events_total", {"log": log_name})
    return value or 0.0


def _relay_until(scratch: Container, topic: str, head: int, target: int) -> tuple[Relay, int]:
    relay = Relay(
        scratch.applications.catalog,
        scratch.settings,
        topic=topic,
        log_name=topic,
        start_after=head,
        idle_wait_s=0.2,
    )
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        saved = wait_for_saved_position(scratch.settings, topic, target, 30)
    finally:
        stop.set()
        thread.join(timeout=30)
    return relay, saved


def test_an_envelope_over_the_topics_size_limit_is_parked_and_the_log_moves_on(
    scratch: Container,
    small_topic: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    head = _head(scratch)
    before, _ = _family(scratch, "before")
    oversize, oversize_id = _family(scratch, "oversize", "x" * 100_000)
    after, _ = _family(scratch, "after")
    parked_before = _parked_count(small_topic)

    relay, saved = _relay_until(scratch, small_topic, head, after)

    assert saved == after
    assert _parked_count(small_topic) - parked_before == 1
    assert _parked_rows(scratch.settings, small_topic) == [(oversize, oversize_id, 1, small_topic)]
    with psycopg.connect(scratch.settings.postgres_dsn) as conn:
        [error] = conn.execute(
            "SELECT error FROM relay_parked WHERE log_name = %s", (small_topic,)
        ).fetchone() or [None]
    assert "MSG_SIZE_TOO_LARGE" in error
    messages = _consume(scratch.settings, small_topic, {before, after}, timeout_s=20)
    assert [decode(message.value).position for message in messages] == [before, after]
    assert relay.stats.parked == 1
    monkeypatch.setenv("ICONMARKET_POSTGRES_DB", scratch.settings.postgres_db)
    capsys.readouterr()
    assert main(["relay", "--parked", "--log-name", small_topic]) == 0
    [listed] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (listed["log_name"], listed["position"], listed["aggregate_id"]) == (
        small_topic,
        oversize,
        oversize_id,
    )
    assert (listed["aggregate_version"], listed["kafka_topic"]) == (1, small_topic)
    assert "MSG_SIZE_TOO_LARGE" in listed["error"]


def test_an_undecodable_notification_is_parked_and_the_log_moves_on(
    scratch: Container, topic: str
) -> None:
    head = _head(scratch)
    before, _ = _family(scratch, "before")
    with psycopg.connect(scratch.settings.postgres_dsn, autocommit=True) as conn:
        stored_topic = conn.execute(
            "SELECT topic FROM catalog_events WHERE notification_id = %s", (before,)
        ).fetchone()
        bad_id = uuid.uuid4()
        row = conn.execute(
            "INSERT INTO catalog_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, 1, %s, 'not an event') RETURNING notification_id",
            (bad_id, stored_topic[0] if stored_topic else ""),
        ).fetchone()
    assert row is not None
    undecodable = int(row[0])
    after, _ = _family(scratch, "after")
    parked_before = _parked_count(topic)

    _relay, saved = _relay_until(scratch, topic, head, after)

    assert saved == after
    assert _parked_count(topic) - parked_before == 1
    assert _parked_rows(scratch.settings, topic) == [(undecodable, str(bad_id), 1, topic)]
    messages = _consume(scratch.settings, topic, {before, after}, timeout_s=20)
    assert sorted({decode(message.value).position for message in messages}) == [before, after]


def test_the_lag_follows_the_log_while_kafka_is_unreachable(scratch: Container) -> None:
    log_name = f"test.relay.down.{uuid.uuid4().hex[:10]}"
    unreachable = dataclasses.replace(scratch.settings, kafka_bootstrap="127.0.0.1:1")
    head = _head(scratch)
    relay = Relay(
        scratch.applications.catalog,
        unreachable,
        topic=log_name,
        log_name=log_name,
        start_after=head,
        idle_wait_s=0.2,
        flush_timeout_s=0.5,
        retry_initial_s=0.1,
        retry_max_s=0.2,
    )
    lag = LAG.labels(log_name)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        assert eventually(lambda: relay.stats.active, 20)
        for n in range(2):
            _family(scratch, f"down {n}")
        assert eventually(lambda: lag._value.get() == 2 and relay.stats.retries >= 1, 30)
        for n in range(3):
            _family(scratch, f"still down {n}")
        assert eventually(lambda: lag._value.get() == 5, 30)
        assert relay.stats.published == 0
    finally:
        stop.set()
        thread.join(timeout=30)
    with psycopg.connect(scratch.settings.postgres_dsn, autocommit=True) as conn:
        assert RelayPositions(conn).load(log_name) is None  # nothing acknowledged, nothing saved
