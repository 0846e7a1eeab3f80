"""Relay throughput (events/s from committed to acked in Kafka) and end-to-end latency from a
command's commit to a consumer's receipt, at 500 commands/s and at the highest rate we reach.
Goals: >= 10,000 events/s; p99 <= 50 ms at 500 commands/s."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from kafka import KafkaConsumer
from kafka.admin import NewTopic

from bench.stats import summarize_ms
from commands import messages as m
from domain.family import Family
from infra.bootstrap import Container, bootstrap
from stream.envelope import decode
from stream.relay import Relay
from tests.support import ctx

BACKLOG = 20_000
RATE = 500
SECONDS = 8


def _topic(container: Container) -> str:
    name = f"bench.relay.{uuid.uuid4().hex[:8]}"
    admin = container.kafka_admin()
    admin.create_topics([NewTopic(name, 3, 1)], timeout_ms=10_000)
    admin.close()
    return name


def _throughput(container: Container) -> dict[str, Any]:
    app = container.applications.catalog
    head = app.recorder.max_notification_id() or 0
    for start in range(0, BACKLOG, 1000):
        app.save(
            *[
                Family.create(owner_id="bench", name=f"B{n}", actor="bench", correlation_id="bench")
                for n in range(start, start + 1000)
            ]
        )
    final = app.recorder.max_notification_id() or 0
    topic = _topic(container)
    relay = Relay(app, container.settings, topic=topic, log_name=topic, start_after=head)
    stop = threading.Event()
    began = time.perf_counter()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    while relay.stats.position < final:
        stop.wait(0.01)
    took = time.perf_counter() - began
    stop.set()
    thread.join()
    return {
        "events": relay.stats.published,
        "seconds": round(took, 2),
        "events_per_s": round(relay.stats.published / took),
    }


def _latency(container: Container, rate: int | None) -> dict[str, Any]:
    app = container.applications.catalog
    topic = _topic(container)
    relay = Relay(
        app,
        container.settings,
        topic=topic,
        log_name=topic,
        start_after=app.recorder.max_notification_id() or 0,
    )
    committed: dict[int, float] = {}
    received: dict[int, float] = {}
    stop = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=container.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=5,
        )
        consumer.poll(timeout_ms=100)
        ready.set()
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=50).values():
                now = time.perf_counter()
                for record in records:
                    received.setdefault(decode(record.value).position, now)
        consumer.close()

    threads = [threading.Thread(target=relay.run, args=(stop,)), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    ready.wait(30)
    bus = container.bus
    lock = threading.Lock()

    def stamp(future: Any) -> None:
        at = time.perf_counter()  # the moment the command's transaction committed
        with lock:
            committed[future.result().position] = at

    began = time.perf_counter()
    n = 0
    futures: list[Any] = []
    while time.perf_counter() - began < SECONDS:
        if rate is not None:
            wait = began + n / rate - time.perf_counter()
            if wait > 0:
                stop.wait(wait)
        elif len(futures) - sum(f.done() for f in futures[-256:]) > 256:
            futures[-256].result()
        future = bus.submit(m.CreateFamily(name=f"L{n}"), ctx("bench", "contributor"))
        future.add_done_callback(stamp)
        futures.append(future)
        n += 1
    for future in futures:
        future.result()
    elapsed = time.perf_counter() - began
    deadline = time.perf_counter() + 30
    while (
        len(received.keys() & committed.keys()) < len(committed) and time.perf_counter() < deadline
    ):
        stop.wait(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    latencies = [received[p] - committed[p] for p in committed if p in received]
    summary = summarize_ms(latencies)
    summary["commands_per_s"] = round(len(committed) / elapsed)
    summary["lost"] = len(committed) - len(latencies)
    return summary


def run() -> dict[str, Any]:
    container = bootstrap()
    try:
        results = {
            f"relay throughput ({BACKLOG} backlog)": _throughput(container),
            f"commit -> receipt at {RATE} commands/s": _latency(container, RATE),
            "commit -> receipt at max commands/s": _latency(container, None),
        }
    finally:
        container.close()
    return {"name": "relay", "unit": "events/s and ms", "results": results}
