"""What the fault tests share: a stack service frozen with SIGSTOP (always resumed), a relay in a
thread, a throwaway event store, and exact reads of what reached a topic."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY

from infra.audit.scratch import scratch_database
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from infra.stack import manager
from infra.stack.base import StackContext
from stream.relay import Relay

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
