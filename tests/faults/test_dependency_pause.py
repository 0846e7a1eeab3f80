"""Fault: a view store (the real Redis) is frozen with SIGSTOP while a consumer is applying a
stream. Nothing may be parked or dead-lettered, and afterwards the view holds every key's last
version exactly. Without the failure classification (stream/failures.py) the Redis timeouts
count as poison attempts and the events are parked: this test goes red."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence

import psycopg
import pytest
from kafka import KafkaProducer

from infra.bootstrap import Container
from infra.settings import Settings
from stream import envelope as env
from stream.consumer import Backoff, ConsumerRunner, Delivery
from tests.faults.harness import paused, sample
from tests.support import scratch_topic

pytestmark = pytest.mark.integration

KEYS = 20
VERSIONS = 10
PAUSE_S = 15.0
# KEYS[1]: the view hash. ARGV: field, version. Newer version wins.
NEWER_WINS = """
local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > stored then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"""


@pytest.fixture
def topic(container: Container) -> Iterator[str]:
    with scratch_topic(container, "test.faults", 3) as name:
        yield name


def _envelope(key: str, version: int) -> env.Envelope:
    return env.Envelope(
        event_id=env.event_id_for(key, version),
        type="Cart.IconAdded",
        schema_version=1,
        context="commerce",
        aggregate_type="Cart",
        aggregate_id=key,
        aggregate_version=version,
        position=version,
        occurred_at="2025-01-01T00:00:00Z",
        actor="user:ada",
        correlation_id="corr-faults",
        causation_id=None,
        data={},
    )


def test_a_frozen_redis_is_waited_for_and_nothing_is_parked(
    container: Container, settings: Settings, topic: str
) -> None:
    group = f"test-faults-{uuid.uuid4().hex[:10]}"
    view_key = f"test:faults:{group}"
    redis = container.redis
    apply = redis.register_script(NEWER_WINS)
    keys = [str(uuid.uuid4()) for _ in range(KEYS)]
    applied = threading.Event()

    def view(deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            event = delivery.event
            apply(keys=[view_key], args=[event.aggregate_id, event.aggregate_version])
        applied.set()

    runner = ConsumerRunner(
        settings,
        group_id=group,
        topics=[topic],
        handler=view,
        batch_size=10,
        poll_timeout_s=0.2,
        # Few attempts, so that classifying the outage as poison would park within the pause.
        max_attempts=2,
        batch_attempts=1,
        backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.4),
    )
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    targets: dict[tuple[str, int], int] = {}

    def produce(versions: range) -> None:
        futures = [
            producer.send(topic, key=k.encode(), value=env.encode(_envelope(k, v)))
            for v in versions
            for k in keys
        ]
        producer.flush()
        for future in futures:
            written = future.get(timeout=10)
            tp = (written.topic, written.partition)
            targets[tp] = max(targets.get(tp, 0), written.offset + 1)

    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        produce(range(1, 3))
        assert applied.wait(30), "the runner applied nothing before the fault"
        with paused(settings, "redis") as pause:
            produce(range(3, VERSIONS + 1))  # consumed while Redis cannot answer
            pause.hold(PAUSE_S)
        assert runner.wait_until_committed(targets, 60), runner.committed()
    finally:
        runner.stop()
        thread.join(30)
        producer.close()

    stored = {k.decode(): int(v) for k, v in redis.hgetall(view_key).items()}
    redis.delete(view_key)
    assert stored == dict.fromkeys(keys, VERSIONS)
    # The outage was really met, and nothing was dead-lettered.
    assert sample("iconmarket_consumer_transient_failures_total", group=group, doing="handle") >= 1
    assert sample("iconmarket_consumer_dead_lettered_total", group=group, topic=topic) == 0
    with psycopg.connect(settings.postgres_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM consumer_parked WHERE group_id = %s", (group,)
        ).fetchone()
    assert row == (0,)
