"""The consumer runner on real Kafka: exactly-once handling of a clean run with committed offsets,
poison and undecodable messages dead-lettered after max_attempts, the dlq CLI listing and
replaying them, graceful stop (in-process and by SIGTERM), and the metrics."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from infra.bootstrap import Container
from infra.settings import Settings
from stream import envelope as env
from stream.consumer import Backoff, ConsumerRunner, Delivery, Partition
from stream.dlq import KafkaPublisher, read_dead_letters
from stream.producer import ConfluentProducer
from stream.topics import dead_letter_topic
from tests.support import Running, dlq_cli, parked_rows, scratch_topic

pytestmark = pytest.mark.integration

Targets = dict[Partition, int]
FAST = Backoff(initial_s=0.01, factor=2.0, max_s=0.04)


@pytest.fixture
def topic(container: Container) -> Iterator[str]:
    with scratch_topic(container, "test.consumer", 3) as name:
        yield name


@pytest.fixture
def new_group(container: Container) -> Iterator[Callable[[], str]]:
    groups: list[str] = []

    def make() -> str:
        groups.append(f"test-consumer-{uuid.uuid4().hex[:10]}")
        return groups[-1]

    yield make
    admin = container.kafka_admin()
    with contextlib.suppress(Exception):
        admin.delete_groups(groups)
    admin.close()


@pytest.fixture
def producer(settings: Settings) -> Iterator[KafkaProducer]:
    made = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    yield made
    made.close()


def _envelope(n: int) -> env.Envelope:
    aggregate_id = str(uuid.uuid4())
    return env.Envelope(
        event_id=env.event_id_for(aggregate_id, 1),
        type="Icon.Published",
        schema_version=1,
        context="catalog",
        aggregate_type="Icon",
        aggregate_id=aggregate_id,
        aggregate_version=1,
        position=n,
        occurred_at="2025-01-01T00:00:00Z",
        actor="user:ada",
        correlation_id="corr-consumer-test",
        causation_id=None,
        data={"n": n},
    )


def _produce(
    producer: KafkaProducer,
    topic: str,
    envelopes: Sequence[env.Envelope],
    partition: int | None = None,
) -> list[Any]:
    futures = [
        producer.send(
            topic,
            value=env.encode(e),
            key=env.key(e),
            headers=env.headers(e),
            partition=partition,
        )
        for e in envelopes
    ]
    producer.flush()
    return [future.get(timeout=10) for future in futures]


def _targets(written: Sequence[Any]) -> Targets:
    targets: Targets = {}
    for metadata in written:
        tp = (metadata.topic, metadata.partition)
        targets[tp] = max(targets.get(tp, 0), metadata.offset + 1)
    return targets


def _committed_in_kafka(settings: Settings, group: str, topic: str) -> Targets:
    """The group's committed offsets, asked by a consumer that does not join the group."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        committed = {
            (topic, p): consumer.committed(TopicPartition(topic, p))
            for p in sorted(consumer.partitions_for_topic(topic))
        }
    finally:
        consumer.close(autocommit=False)
    return {tp: offset for tp, offset in committed.items() if offset is not None}


def _runner(
    settings: Settings, group: str, topic: str, handler: Any, **options: Any
) -> ConsumerRunner:
    defaults: dict[str, Any] = {"backoff": FAST, "poll_timeout_s": 0.2}
    return ConsumerRunner(
        settings, group_id=group, topics=[topic], handler=handler, **(defaults | options)
    )


def _run_until_committed(runner: ConsumerRunner, targets: Targets, timeout_s: float = 30) -> None:
    running = Running(runner)
    try:
        reached = runner.wait_until_committed(targets, timeout_s)
    finally:
        running.finish()
    assert reached, f"committed {runner.committed()}, expected {targets}"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_message_is_handled_once_and_the_offsets_are_committed(
    settings: Settings,
    topic: str,
    new_group: Callable[[], str],
    producer: KafkaProducer,
) -> None:
    group = new_group()
    envelopes = [_envelope(n) for n in range(30)]
    targets = _targets(_produce(producer, topic, envelopes))
    handled: list[str] = []

    def handler(deliveries: Sequence[Delivery]) -> None:
        handled.extend(delivery.event.event_id for delivery in deliveries)

    _run_until_committed(_runner(settings, group, topic, handler, batch_size=7), targets)

    assert Counter(handled) == {e.event_id: 1 for e in envelopes}
    assert _committed_in_kafka(settings, group, topic) == targets
    assert len(targets) == 3
    for _, partition in targets:
        labels = {"group": group, "topic": topic, "partition": str(partition)}
        assert REGISTRY.get_sample_value("iconmarket_consumer_lag_messages", labels) == 0.0


def test_poison_and_undecodable_messages_are_dead_lettered_after_max_attempts(
    settings: Settings,
    topic: str,
    new_group: Callable[[], str],
    producer: KafkaProducer,
) -> None:
    group = new_group()
    before = [_envelope(n) for n in range(5)]
    poison = _envelope(5)
    after = [_envelope(n) for n in range(7, 12)]
    written = _produce(producer, topic, [*before, poison], partition=0)
    raw = producer.send(
        topic, value=b"\x00not an envelope", key=b"raw-key", headers=[("origin", b"x")], partition=0
    ).get(timeout=10)
    written += [raw, *_produce(producer, topic, after, partition=0)]
    attempts: Counter[str] = Counter()
    handled: list[str] = []

    def handler(deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            attempts[delivery.envelope.event_id if delivery.envelope else "raw"] += 1
        events = [delivery.event for delivery in deliveries]  # raises for the raw message
        if poison in events:
            raise RuntimeError(f"cannot apply {poison.event_id}")
        handled.extend(event.event_id for event in events)

    started = dt.datetime.now(dt.UTC)
    runner = _runner(settings, group, topic, handler, max_attempts=3, batch_size=4)
    _run_until_committed(runner, _targets(written))

    assert attempts["raw"] == 3
    assert attempts[poison.event_id] == 3
    assert Counter(handled) == {e.event_id: 1 for e in [*before, *after]}
    assert _sample("iconmarket_consumer_dead_lettered_total", group=group, topic=topic) == 2
    assert _sample("iconmarket_consumer_messages_processed_total", group=group, topic=topic) == 10

    read = read_dead_letters(settings, topic, timeout_s=15)
    assert read.complete
    by_offset = {int(letter.header("dlq_source_offset") or -1): letter for letter in read.letters}
    assert sorted(by_offset) == [5, 6]
    poisoned, garbage = by_offset[5], by_offset[6]
    assert (poisoned.key, poisoned.value) == (env.key(poison), env.encode(poison))
    assert poisoned.headers[:8] == env.headers(poison)
    assert dict(poisoned.headers[8:]) | {"dlq_failed_at": b""} == {
        "dlq_error": f"RuntimeError: cannot apply {poison.event_id}".encode(),
        "dlq_source_topic": topic.encode(),
        "dlq_source_partition": b"0",
        "dlq_source_offset": b"5",
        "dlq_attempts": b"3",
        "dlq_failed_at": b"",
        "dlq_group": group.encode(),
    }
    assert (garbage.key, garbage.value) == (b"raw-key", b"\x00not an envelope")
    assert garbage.headers[0] == ("origin", b"x")
    assert (garbage.header("dlq_source_offset"), garbage.header("dlq_attempts")) == ("6", "3")
    assert (garbage.header("dlq_error") or "").startswith("UndecodableMessage: ")
    for letter in (poisoned, garbage):
        failed_at = dt.datetime.fromisoformat(letter.header("dlq_failed_at") or "")
        assert started <= failed_at <= dt.datetime.now(dt.UTC)


def test_a_poison_event_parks_its_key_and_the_cli_replays_it_in_key_order(
    settings: Settings,
    topic: str,
    new_group: Callable[[], str],
    producer: KafkaProducer,
) -> None:
    group = new_group()
    key = str(uuid.uuid4())
    versions = [_envelope(n) for n in range(1, 5)]
    versions = [
        msgspec.structs.replace(e, aggregate_id=key, aggregate_version=n + 1)
        for n, e in enumerate(versions)
    ]
    other = _envelope(9)
    written = _produce(producer, topic, [*versions, other], partition=1)
    poison = versions[1]
    applied: dict[str, int] = {}
    broken = threading.Event()
    broken.set()

    def view(deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            event = delivery.event
            if broken.is_set() and event == poison:
                raise KeyError("icon")
            if event.aggregate_version > applied.get(event.aggregate_id, 0):
                applied[event.aggregate_id] = event.aggregate_version

    _run_until_committed(_runner(settings, group, topic, view, max_attempts=2), _targets(written))

    assert applied == {key: 1, other.aggregate_id: 1}
    assert parked_rows(settings, group) == [
        (key, 1, None),
        (key, 2, f"{topic}/1/1"),
        (key, 3, f"{topic}/1/1"),
    ]
    listed = dlq_cli("list", "--topic", topic, "--timeout", "15")
    assert listed.returncode == 0, listed.stderr
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(x["source_offset"], x["group"], x["parked_behind"]) for x in letters] == [
        (1, group, None),
        (2, group, f"{topic}/1/1"),
        (3, group, f"{topic}/1/1"),
    ]
    assert letters[0]["error"] == "KeyError: 'icon'"
    parked = dlq_cli("parked", "--group", group)
    assert [json.loads(line)["source"] for line in parked.stdout.splitlines()] == [
        f"{topic}/1/1",
        f"{topic}/1/2",
        f"{topic}/1/3",
    ]

    broken.clear()  # the cause is fixed
    running = Running(_runner(settings, group, topic, view))
    try:
        replayed = dlq_cli(
            "replay", "--group", group, "--key", key, "--by", "ops:ada", "--wait", "30"
        )
    finally:
        running.finish()
    assert replayed.returncode == 0, replayed.stderr
    outcome = json.loads(replayed.stdout)
    assert {k: v for k, v in outcome.items() if k != "request"} == {
        "action": "replay",
        "requested_by": "ops:ada",
        "reason": "",
        "applied": 3,
        "skipped": 0,
        "still_parked": 0,
    }
    assert applied == {key: 4, other.aggregate_id: 1}
    assert parked_rows(settings, group) == []


def test_the_relay_and_the_dead_letters_put_a_key_on_the_same_partition(
    settings: Settings, topic: str
) -> None:
    keys = [str(uuid.uuid4()).encode() for _ in range(12)]
    relay = ConfluentProducer(settings, "test-partitioner")
    received: list[Delivery] = []
    try:
        for key in keys:
            relay.send(topic, key, b"{}", [])
        relay.flush()
    finally:
        relay.close()
    targets = _end_offsets(settings, topic)
    _run_until_committed(
        _runner(settings, f"test-partitioner-{uuid.uuid4().hex[:8]}", topic, received.extend),
        targets,
    )
    relayed = {delivery.key: delivery.partition for delivery in received}
    publisher = KafkaPublisher(settings, "test-partitioner-dlq")
    try:
        dead = {
            key: publisher.publish(dead_letter_topic(topic), key, b"{}", []).partition
            for key in keys
        }
    finally:
        publisher.close()
    assert dead == relayed
    assert len(set(relayed.values())) > 1  # the keys spread over the partitions


def _end_offsets(settings: Settings, topic: str) -> Targets:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(partitions)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items() if offset}


def test_replaying_a_key_with_nothing_parked_requests_nothing(
    settings: Settings, new_group: Callable[[], str]
) -> None:
    group = new_group()
    replayed = dlq_cli("replay", "--group", group, "--key", "k-1", "--wait", "1")
    assert replayed.returncode == 1
    assert replayed.stdout == ""
    assert f"nothing parked in group {group} for k-1; nothing requested" in replayed.stderr
    with psycopg.connect(settings.postgres_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM consumer_park_requests WHERE group_id = %s", (group,)
        ).fetchone()
    assert row == (0,)


def test_stop_finishes_the_current_batch_and_a_restart_resumes_after_it(
    settings: Settings,
    topic: str,
    new_group: Callable[[], str],
    producer: KafkaProducer,
) -> None:
    group = new_group()
    envelopes = [_envelope(n) for n in range(20)]
    targets = _targets(_produce(producer, topic, envelopes))
    entered, release = threading.Event(), threading.Event()
    first: list[Delivery] = []

    def slow(deliveries: Sequence[Delivery]) -> None:
        entered.set()
        assert release.wait(timeout=20)
        first.extend(deliveries)

    running = Running(_runner(settings, group, topic, slow, batch_size=5))
    assert entered.wait(timeout=20)
    running.runner.stop()
    release.set()
    running.finish()

    assert 1 <= len(first) <= 5
    done = _targets(first)
    assert _committed_in_kafka(settings, group, topic) == done
    assert running.runner.committed() == done

    second: list[Delivery] = []
    rest = {tp: end for tp, end in targets.items() if done.get(tp) != end}
    _run_until_committed(_runner(settings, group, topic, second.extend), rest)
    handled = [d.event.event_id for d in [*first, *second]]
    assert Counter(handled) == {e.event_id: 1 for e in envelopes}
    assert _committed_in_kafka(settings, group, topic) == targets


CHILD = """
import sys
from infra.settings import load_settings
from stream.consumer import ConsumerRunner, serve

def handle(deliveries):
    for delivery in deliveries:
        print(delivery.event.event_id, flush=True)

runner = ConsumerRunner(
    load_settings(), group_id=sys.argv[1], topics=[sys.argv[2]], handler=handle,
    poll_timeout_s=0.2,
)
serve([runner])
print("stopped", flush=True)
"""


def _read_lines(proc: subprocess.Popen[bytes], count: int, timeout_s: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    try:
        while len(lines) < count and selector.select(timeout=deadline - time.monotonic()):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.decode().strip())
    finally:
        selector.close()
    return lines


def test_sigterm_stops_a_served_runner_after_committing(
    settings: Settings,
    topic: str,
    new_group: Callable[[], str],
    producer: KafkaProducer,
) -> None:
    group = new_group()
    envelopes = [_envelope(n) for n in range(12)]
    targets = _targets(_produce(producer, topic, envelopes))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, group, topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,  # unbuffered, so the selector sees every line the child prints
    )
    try:
        seen = _read_lines(proc, len(envelopes), timeout_s=30)
        proc.send_signal(signal.SIGTERM)
        remaining, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert Counter(seen) == {e.event_id: 1 for e in envelopes}
    assert remaining.decode().splitlines() == ["stopped"]
    assert _committed_in_kafka(settings, group, topic) == targets


def test_the_metrics_count_every_processed_message_and_batch(
    settings: Settings,
    topic: str,
    new_group: Callable[[], str],
    producer: KafkaProducer,
) -> None:
    group = new_group()
    envelopes = [_envelope(n) for n in range(25)]
    targets = _targets(_produce(producer, topic, envelopes))
    calls: list[int] = []
    lags: list[float] = []
    assert _sample("iconmarket_consumer_messages_processed_total", group=group, topic=topic) == 0

    def handler(deliveries: Sequence[Delivery]) -> None:
        calls.append(len(deliveries))
        lags.append(
            sum(
                _sample("iconmarket_consumer_lag_messages", group=group, topic=topic, partition=p)
                for p in ("0", "1", "2")
            )
        )

    _run_until_committed(_runner(settings, group, topic, handler, batch_size=10), targets)

    assert sum(calls) == 25
    assert len(calls) >= 3
    # Before each later batch, the lag is what the earlier batches left: end - position.
    assert lags[1:] == [25 - sum(calls[:k]) for k in range(1, len(calls))]
    processed = _sample("iconmarket_consumer_messages_processed_total", group=group, topic=topic)
    assert processed == 25
    assert _sample("iconmarket_consumer_batch_duration_seconds_count", group=group) == len(calls)
    assert _sample("iconmarket_consumer_dead_lettered_total", group=group, topic=topic) == 0
    failures = _sample(
        "iconmarket_consumer_handler_failures_total", group=group, topic=topic, mode="batch"
    )
    assert failures == 0
