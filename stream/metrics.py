"""Prometheus metrics of the consumer runner (module-level singletons, labelled by group/topic).

Worker processes started by ``iconmarket run`` inherit ``PROMETHEUS_MULTIPROC_DIR`` from the
supervisor, so these values land in that directory and the API's ``/metrics`` sums them across
processes. The variable must be set before ``prometheus_client`` is first imported.
"""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

_Metric = TypeVar("_Metric", Counter, Gauge, Histogram)


def _registered(kind: type[_Metric], name: str) -> _Metric | None:
    """The collector already registered under ``name`` (a second import of this module, e.g.
    under another name or after a reload, must reuse it instead of failing as a duplicate)."""
    existing = REGISTRY._names_to_collectors.get(name)  # no public lookup exists
    return existing if isinstance(existing, kind) else None


def counter(name: str, doc: str, labels: list[str]) -> Counter:
    """A labelled counter, reused if this process registered it already."""
    return _registered(Counter, name) or Counter(name, doc, labels)


PROCESSED = counter(
    "iconmarket_consumer_messages_processed",
    "Messages a consumer's handler processed successfully (rate = throughput).",
    ["group", "topic"],
)
HANDLER_FAILURES = counter(
    "iconmarket_consumer_handler_failures",
    "Handler calls that raised, by mode (batch or single); each is retried or dead-lettered.",
    ["group", "topic", "mode"],
)
DEAD_LETTERED = counter(
    "iconmarket_consumer_dead_lettered",
    "Messages written to the dead-letter topic after failing max_attempts times.",
    ["group", "topic"],
)
TRANSIENT_FAILURES = counter(
    "iconmarket_consumer_transient_failures",
    "Failures classified transient (a dependency is down): retried with backoff, never parked.",
    ["group", "doing"],
)
PARKED = counter(
    "iconmarket_consumer_parked",
    "Messages parked: the poison event itself (reason=poison) or a later event of its key "
    "(reason=behind).",
    ["group", "topic", "reason"],
)
UNPARKED = counter(
    "iconmarket_consumer_unparked",
    "Parked messages resolved by an operator's request "
    "(action=replay applied it, action=skip dropped it).",
    ["group", "topic", "action"],
)
WAITING = _registered(Gauge, "iconmarket_consumer_waiting_for_dependency") or Gauge(
    "iconmarket_consumer_waiting_for_dependency",
    "1 while a consumer is backing off (its partitions paused) before retrying a failure.",
    ["group"],
    multiprocess_mode="livemax",
)
BATCH_DURATION = _registered(Histogram, "iconmarket_consumer_batch_duration_seconds") or Histogram(
    "iconmarket_consumer_batch_duration_seconds",
    "Seconds from handing a polled batch to the handler until its offsets were committed.",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
LAG = _registered(Gauge, "iconmarket_consumer_lag_messages") or Gauge(
    "iconmarket_consumer_lag_messages",
    "Messages in a partition after the group's position (end offset - position).",
    ["group", "topic", "partition"],
    multiprocess_mode="livemax",
)
