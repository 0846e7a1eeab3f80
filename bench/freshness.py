"""Live projections: throughput of a projector on the consumer runner (Kafka → view) and
freshness, the time from a command's commit to its change being visible in the read model.

Throughput: a new consumer group replays each topic from its first offset into a scratch target
(a new Redis key prefix, a new OpenSearch index), timed from the first delivered batch until the
group has committed the topic's end offsets.

Freshness: the relay and the projection workers run as their own processes (as in `make run`);
each round executes one command in this process, then waits for the projection's position
notification (``projection:{name}:advanced``) to reach the command's position. Waiting is on
the notification, never a sleep. Goals on 2 cores: cart p99 <= 100 ms, catalog p99 <= 1.2 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bench.stats import percentile
from commands import messages as m
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from projections.cart_view import RedisCartView
from projections.carts import apply as project_cart
from projections.catalog import apply as project_catalog
from projections.catalog_view import OpenSearchCatalogView, create_index
from projections.keyspace import delete_prefix
from projections.positions import ProjectionPositions
from stream.consumer import ConsumerRunner, Delivery
from stream.topics import topic_for
from tests.support import ctx, published_catalog

ROUNDS = int(os.environ.get("ICONMARKET_BENCH_FRESHNESS_ROUNDS", "200"))
CATCH_UP_TIMEOUT_S = 600.0


def _end_offsets(settings: Settings, topic: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bench-peek"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {}
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()


def _throughput(
    container: Container, context: str, write: Callable[[Sequence[Delivery]], None]
) -> dict[str, Any]:
    """Replay ``context``'s topic through a new consumer group into ``write``."""
    topic = topic_for(context)
    ends = _end_offsets(container.settings, topic)
    total = sum(ends.values())
    first: list[float] = []
    count = [0]

    def handler(deliveries: Sequence[Delivery], /) -> None:
        if not first:
            first.append(time.perf_counter())
        write(deliveries)
        count[0] += len(deliveries)

    runner = ConsumerRunner(
        container.settings,
        group_id=f"bench-throughput-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=handler,
        batch_size=2_000,
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        if not runner.wait_until_committed(ends, timeout_s=CATCH_UP_TIMEOUT_S):
            raise RuntimeError(f"{topic}: the consumer did not reach the end offsets in time")
        seconds = time.perf_counter() - first[0]
    finally:
        runner.stop()
        thread.join(timeout=60)
    return {"events": count[0], "messages_in_topic": total, "events_per_s": count[0] / seconds}


def _cart_throughput(container: Container) -> dict[str, Any]:
    prefix = f"bench-carts-{uuid.uuid4().hex[:8]}:"
    view = RedisCartView(container.redis, prefix=prefix)

    def write(deliveries: Sequence[Delivery]) -> None:
        writes = [w for d in deliveries for w in project_cart(d.event)]
        if writes:
            view.apply(writes)

    try:
        return _throughput(container, "commerce", write)
    finally:
        delete_prefix(container.redis, prefix)


def _catalog_throughput(container: Container) -> dict[str, Any]:
    index = f"bench-catalog-{uuid.uuid4().hex[:8]}"
    create_index(container.opensearch, index)
    view = OpenSearchCatalogView(container.opensearch, index)

    def write(deliveries: Sequence[Delivery]) -> None:
        writes = [w for d in deliveries for w in project_catalog(d.event)]
        if writes:
            view.apply(writes)

    try:
        return _throughput(container, "catalog", write)
    finally:
        container.opensearch.indices.delete(index=index, ignore_unavailable=True)


@contextmanager
def _workers(names: Sequence[str]) -> Iterator[None]:
    """The relay and the named projection workers, as `make run` starts them."""
    env = {**os.environ, "ICONMARKET_LOG_LEVEL": "WARNING"}
    commands = [
        [sys.executable, "-m", "infra.cli", "relay"],
        [sys.executable, "-m", "infra.cli", "project", "run", *names],
    ]
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for c in commands
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


class PositionWatch:
    """Wakes on a projection's position notifications; ``wait`` returns when ``log`` reached
    ``position`` (checking the stored position first, so a notification that came before the
    wait began is not missed)."""

    def __init__(self, container: Container, projection: str) -> None:
        self._positions = ProjectionPositions(container.redis)
        self._projection = projection
        self._pubsub = container.redis.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(ProjectionPositions.channel(projection))

    def wait(self, log: str, position: int, timeout_s: float) -> float:
        """Seconds until reached (measured on return); raises on timeout."""
        deadline = time.perf_counter() + timeout_s
        if self._positions.get(self._projection).get(log, 0) >= position:
            return time.perf_counter()
        while time.perf_counter() < deadline:
            message = self._pubsub.get_message(timeout=deadline - time.perf_counter())
            if message is None:
                continue
            name, _, reached = message["data"].decode().partition(":")
            if name == log and int(reached) >= position:
                return time.perf_counter()
        raise TimeoutError(f"{self._projection} did not reach {log}:{position}")

    def close(self) -> None:
        self._pubsub.close()


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    return {
        "rounds": len(samples_ms),
        "p50_ms": round(statistics.median(samples_ms), 1),
        "p99_ms": round(percentile(samples_ms, 99), 1),
        "max_ms": round(max(samples_ms), 1),
    }


def _freshness(container: Container) -> dict[str, Any]:
    bus = container.bus
    owner = f"bench-fresh-{uuid.uuid4().hex[:6]}"
    catalog = published_catalog(bus, owner, prices=tuple(100 + n for n in range(ROUNDS)))
    contributor = ctx(owner, "contributor")
    customer = ctx(f"bench-fresh-cust-{uuid.uuid4().hex[:6]}", "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), customer).aggregate_id
    heads = {
        app.context: app.recorder.max_notification_id() or 0 for app in container.applications.all()
    }
    carts = PositionWatch(container, "carts")
    icons = PositionWatch(container, "catalog")
    try:
        carts.wait("commerce", heads["commerce"], CATCH_UP_TIMEOUT_S)
        icons.wait("catalog", heads["catalog"], CATCH_UP_TIMEOUT_S)
        cart_ms: list[float] = []
        catalog_ms: list[float] = []
        for n, icon_id in enumerate(catalog.icon_ids):
            added = bus.execute(
                m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), customer
            )
            committed = time.perf_counter()
            cart_ms.append((carts.wait("commerce", added.position, 30) - committed) * 1000)
            renamed = bus.execute(
                m.UpdateIconDetails(icon_id=icon_id, name=f"fresh {n}", tags=("fresh",)),
                contributor,
            )
            committed = time.perf_counter()
            catalog_ms.append((icons.wait("catalog", renamed.position, 30) - committed) * 1000)
    finally:
        carts.close()
        icons.close()
    return {"cart": _percentiles(cart_ms), "catalog": _percentiles(catalog_ms)}


def run() -> dict[str, Any]:
    container = bootstrap()
    results: dict[str, Any] = {}
    try:
        for name, measure in (("carts", _cart_throughput), ("catalog", _catalog_throughput)):
            done = measure(container)
            results[f"projector throughput {name}"] = {
                "events": done["events"],
                "events_per_s": round(done["events_per_s"], 1),
            }
        with _workers(["carts", "catalog"]):
            fresh = _freshness(container)
        results["freshness cart (commit to visible)"] = fresh["cart"]
        results["freshness catalog (commit to visible)"] = fresh["catalog"]
    finally:
        container.close()
    return {
        "name": "live projections: throughput and freshness",
        "unit": "events/s through the consumer runner; ms from commit to the projection's "
        f"position notification, {ROUNDS} rounds",
        "results": results,
    }
