"""The consumer runner: the Kafka plumbing every projector and pipeline stage runs inside.

A handler never touches a Kafka client. The runner polls a batch, hands it to the handler as
decoded `Delivery` objects and commits the batch's offsets once the handler returned. A failing
batch is retried with capped exponential backoff; a batch that keeps failing is split and its
messages retried one by one, so a poison message is isolated: once it has failed
``max_attempts`` times it is copied to ``<topic>.dlq`` (acks=all) and the runner moves on.

Delivery is at-least-once (a crash before the commit redelivers the batch; a retried batch
re-runs the messages that had succeeded in it), so handlers must be idempotent.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

import msgspec

from infra.settings import Settings
from stream import metrics
from stream.dlq import DeadLetterPublisher, KafkaPublisher, dead_letter_headers
from stream.envelope import Envelope, decode
from stream.topics import dead_letter_topic

log = logging.getLogger("iconmarket.consumer")
kafka_client_log = logging.getLogger("iconmarket.consumer.librdkafka")

Partition = tuple[str, int]

METADATA_MAX_AGE_MS = 5_000
# How long a batch waits for more already-flowing messages after its first one.
BATCH_LINGER_S = 0.002


class UndecodableMessage(ValueError):
    """The message's bytes are not a valid envelope: a poison message."""


class TransientError(Exception):
    """Raised by a handler when the failure is not the messages' fault (a view store is down).

    The batch is retried with backoff until it succeeds or the runner stops; transient failures
    never count toward ``max_attempts`` and never dead-letter a message.
    """


@dataclass(frozen=True, slots=True)
class Delivery:
    """One consumed message: its coordinates, key, headers and decoded envelope.

    ``envelope`` is None when ``value`` is not a valid envelope; reading ``event`` then raises
    `UndecodableMessage`, which (unless the handler catches it) dead-letters the message.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, bytes]
    raw_headers: tuple[tuple[str, bytes], ...]
    envelope: Envelope | None
    decode_error: str | None = None

    @property
    def event(self) -> Envelope:
        if self.envelope is None:
            raise UndecodableMessage(self.decode_error or "not an envelope")
        return self.envelope


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka message, independent of the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] | None

    @classmethod
    def of(cls, message: Any) -> Record:
        """From a confluent-kafka ``Message``."""
        return cls(
            message.topic(),
            message.partition(),
            message.offset(),
            message.key(),
            message.value(),
            message.headers(),
        )


def to_delivery(record: Any) -> Delivery:
    """A `Delivery` from a `Record` (or any object with the same attributes)."""
    value: bytes = record.value if record.value is not None else b""
    raw = tuple((name, data if data is not None else b"") for name, data in record.headers or ())
    envelope: Envelope | None = None
    error: str | None = None
    try:
        envelope = decode(value)
    except msgspec.MsgspecError as exc:
        error = str(exc)
    return Delivery(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=value,
        headers=dict(raw),
        raw_headers=raw,
        envelope=envelope,
        decode_error=error,
    )


class Handler(Protocol):
    """Processes a batch of deliveries, in partition order; returns once its writes are durable.

    Raising means "not processed": the runner retries (see `RetryPolicy`), so everything the
    handler does must be idempotent. It must not touch Kafka.
    """

    def __call__(self, deliveries: Sequence[Delivery], /) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``failures``: ``initial_s * factor**(failures-1)``, capped."""

    initial_s: float = 0.1
    factor: float = 2.0
    max_s: float = 2.0

    def delay(self, failures: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1))


class Step(enum.Enum):
    RETRY = "retry"
    SPLIT = "split"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing batch, then each of its messages alone, is tried.

    A message's attempts count every failed handler call that contained it, batch calls
    included. A batch of several messages is tried ``batch_attempts`` times (at most
    ``max_attempts - 1``, so each message is also tried alone), then split; a message alone is
    dead-lettered once it failed ``max_attempts`` times (and at least once alone).
    """

    max_attempts: int = 5
    batch_attempts: int = 2
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.batch_attempts < 1:
            raise ValueError("max_attempts and batch_attempts must be at least 1")

    @property
    def batch_limit(self) -> int:
        return max(1, min(self.batch_attempts, self.max_attempts - 1))

    def after_failure(self, *, failures: int, solo: bool) -> Step:
        if not solo:
            return Step.RETRY if failures < self.batch_limit else Step.SPLIT
        return Step.DEAD_LETTER if failures >= self.max_attempts else Step.RETRY


@dataclass
class Progress:
    """How far a batch got: the next offset to commit per partition, and whether it finished."""

    next_offsets: dict[Partition, int] = field(default_factory=dict)
    complete: bool = True

    def done(self, delivery: Delivery) -> None:
        self.next_offsets[(delivery.topic, delivery.partition)] = delivery.offset + 1


@dataclass(frozen=True)
class _Outcome:
    step: Step | None  # None: handled; else SPLIT or DEAD_LETTER
    failures: int
    error: Exception | None = None
    stopped: bool = False


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BatchProcessor:
    """Runs the handler over one polled batch: retries, isolation, dead letters. No consumer.

    ``wait(seconds)`` sleeps between retries and returns True when the runner is stopping; the
    batch is then abandoned after the messages already done (the rest is redelivered).
    """

    def __init__(
        self,
        group_id: str,
        handler: Handler,
        *,
        policy: RetryPolicy,
        dead_letters: DeadLetterPublisher,
        wait: Callable[[float], bool],
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.group_id = group_id
        self._handler = handler
        self._policy = policy
        self._dead_letters = dead_letters
        self._wait = wait
        self._now = now

    def process(self, deliveries: Sequence[Delivery]) -> Progress:
        progress = Progress()
        prior = 0
        if len(deliveries) > 1:
            outcome = self._attempt(deliveries, failures=0, solo=False)
            if outcome.stopped:
                return Progress(complete=False)
            if outcome.step is None:
                for delivery in deliveries:
                    progress.done(delivery)
                return progress
            prior = outcome.failures
            log.warning(
                "batch keeps failing; retrying its messages one by one",
                extra={"group": self.group_id, "size": len(deliveries), "attempts": prior},
            )
        for delivery in deliveries:
            outcome = self._attempt([delivery], failures=prior, solo=True)
            if outcome.stopped:
                progress.complete = False
                return progress
            if outcome.step is Step.DEAD_LETTER:
                assert outcome.error is not None
                self._dead_letter(delivery, outcome.error, outcome.failures)
            progress.done(delivery)
        return progress

    def _attempt(self, deliveries: Sequence[Delivery], *, failures: int, solo: bool) -> _Outcome:
        transient = 0
        while True:
            try:
                self._handler(deliveries)
            except Exception as exc:
                self._count_failure(deliveries, solo)
                if isinstance(exc, TransientError):
                    transient += 1
                    delay = self._policy.backoff.delay(transient)
                else:
                    failures += 1
                    step = self._policy.after_failure(failures=failures, solo=solo)
                    if step is not Step.RETRY:
                        return _Outcome(step, failures, exc)
                    delay = self._policy.backoff.delay(failures)
                log.warning(
                    "handler failed; retrying",
                    extra={"group": self.group_id, "error": repr(exc), "retry_in_s": delay},
                )
                if self._wait(delay):
                    return _Outcome(None, failures, exc, stopped=True)
            else:
                for topic, count in _count_by_topic(deliveries).items():
                    metrics.PROCESSED.labels(self.group_id, topic).inc(count)
                return _Outcome(None, failures)

    def _count_failure(self, deliveries: Sequence[Delivery], solo: bool) -> None:
        mode = "single" if solo else "batch"
        for topic in _count_by_topic(deliveries):
            metrics.HANDLER_FAILURES.labels(self.group_id, topic, mode).inc()

    def _dead_letter(self, delivery: Delivery, error: Exception, attempts: int) -> None:
        headers = dead_letter_headers(
            delivery.raw_headers,
            error=error,
            source_topic=delivery.topic,
            source_partition=delivery.partition,
            source_offset=delivery.offset,
            attempts=attempts,
            failed_at=self._now(),
        )
        written = self._dead_letters.publish(
            dead_letter_topic(delivery.topic), delivery.key, delivery.value, headers
        )
        metrics.DEAD_LETTERED.labels(self.group_id, delivery.topic).inc()
        log.error(
            "message dead-lettered",
            extra={
                "group": self.group_id,
                "source": f"{delivery.topic}/{delivery.partition}/{delivery.offset}",
                "dlq": f"{written.topic}/{written.partition}/{written.offset}",
                "attempts": attempts,
                "error": repr(error),
            },
        )


def _count_by_topic(deliveries: Sequence[Delivery]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for delivery in deliveries:
        counts[delivery.topic] = counts.get(delivery.topic, 0) + 1
    return counts


class ConsumerRunner:
    """One member of a consumer group: poll → handler → retry/dead-letter → commit → repeat.

    Nothing connects until `run`, which blocks until `stop` is called (from any thread, or by
    `serve` on SIGTERM/SIGINT): the current batch is finished and committed, then the consumer
    closes. Offsets are committed only after the handler returned or the message was
    dead-lettered; a failure to write a dead letter propagates out of `run` uncommitted.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str,
        topics: Sequence[str],
        handler: Handler,
        max_attempts: int = 5,
        batch_attempts: int = 2,
        backoff: Backoff | None = None,
        batch_size: int = 500,
        poll_timeout_s: float = 1.0,
        max_poll_interval_s: float = 300.0,
        client_id: str | None = None,
        dead_letters: DeadLetterPublisher | None = None,
    ) -> None:
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        self.settings = settings
        self.group_id = group_id
        self.topics = tuple(topics)
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.max_poll_interval_s = max_poll_interval_s
        self.client_id = client_id or f"iconmarket-{group_id}"
        self.policy = RetryPolicy(max_attempts, batch_attempts, backoff or Backoff())
        self._dead_letters = dead_letters or KafkaPublisher(settings, f"{self.client_id}-dlq")
        self._stop = threading.Event()
        self._processor = BatchProcessor(
            group_id,
            handler,
            policy=self.policy,
            dead_letters=self._dead_letters,
            wait=self._stop.wait,
        )
        self._committed: dict[Partition, int] = {}
        self._commits = threading.Condition()
        self._lag_labels: set[Partition] = set()

    def stop(self) -> None:
        """Ask `run` to return after the current batch (safe from any thread or signal)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def committed(self) -> dict[Partition, int]:
        """The next offset this runner committed per (topic, partition)."""
        with self._commits:
            return dict(self._committed)

    def wait_until_committed(self, targets: Mapping[Partition, int], timeout_s: float) -> bool:
        """Block until this runner committed at least ``targets`` (or ``timeout_s`` passed)."""

        def reached() -> bool:
            return all(self._committed.get(tp, -1) >= offset for tp, offset in targets.items())

        with self._commits:
            return self._commits.wait_for(reached, timeout=timeout_s)

    def run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": self.group_id,
                "client.id": self.client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "max.poll.interval.ms": int(self.max_poll_interval_s * 1000),
                # New topics and partitions are noticed within seconds, not minutes.
                "topic.metadata.refresh.interval.ms": METADATA_MAX_AGE_MS,
                "logger": kafka_client_log,
            }
        )
        consumer.subscribe(list(self.topics))
        log.info("consumer started", extra={"group": self.group_id, "topics": self.topics})
        try:
            while not self._stop.is_set():
                self._cycle(consumer)
        finally:
            try:
                self._dead_letters.close()
            finally:
                consumer.close()
            log.info("consumer stopped", extra={"group": self.group_id})

    def _poll(self, consumer: Any) -> list[Any]:
        """Wait (up to the poll timeout) for one message, then take what is already fetched, up
        to a batch. ``consume(n, timeout)`` alone waits for n messages or the whole timeout, which
        made a lone event wait up to a second before its projection saw it."""
        first = consumer.poll(self.poll_timeout_s)
        if first is None:
            return []
        if self.batch_size == 1:
            return [first]
        more = consumer.consume(num_messages=self.batch_size - 1, timeout=BATCH_LINGER_S)
        return [first, *more]

    def _cycle(self, consumer: Any) -> None:
        messages = self._poll(consumer)
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(Record.of(message))
            elif error.fatal():
                raise RuntimeError(f"Kafka consumer failed: {error}")
            else:
                log.warning("consumer error", extra={"group": self.group_id, "error": str(error)})
        if records:
            records.sort(key=lambda record: (record.topic, record.partition, record.offset))
            started = time.perf_counter()
            progress = self._processor.process([to_delivery(record) for record in records])
            self._commit(consumer, progress.next_offsets)
            metrics.BATCH_DURATION.labels(self.group_id).observe(time.perf_counter() - started)
        self._update_lag(consumer)

    def _commit(self, consumer: Any, next_offsets: dict[Partition, int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        if not next_offsets:
            return
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in sorted(next_offsets.items())
        ]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The group rebalanced under us: the new owner redelivers this batch.
            log.warning("commit refused after a rebalance", extra={"error": str(exc)})
            return
        with self._commits:
            self._committed.update(next_offsets)
            self._commits.notify_all()

    def _update_lag(self, consumer: Any) -> None:
        from confluent_kafka import KafkaException

        try:
            assigned = consumer.assignment()
            positions = consumer.position(assigned) if assigned else []
            unread = [tp for tp in positions if tp.offset < 0]
            if unread:  # nothing consumed there yet: the group resumes from its commit
                committed = {(tp.topic, tp.partition): tp for tp in consumer.committed(unread)}
                positions = [committed.get((tp.topic, tp.partition), tp) for tp in positions]
            current: set[Partition] = set()
            for tp in positions:
                # The cached end offset comes with every fetch response; asking the broker
                # would queue behind the long-polling fetch on the same connection.
                low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue  # nothing fetched there yet
                position = tp.offset if tp.offset >= 0 else max(low, 0)
                labels = (self.group_id, tp.topic, str(tp.partition))
                metrics.LAG.labels(*labels).set(max(0, high - position))
                current.add((tp.topic, tp.partition))
        except KafkaException as exc:
            log.debug("lag not updated", extra={"error": str(exc)})
            return
        for topic, partition in self._lag_labels - current:
            metrics.LAG.labels(self.group_id, topic, str(partition)).set(0)
            metrics.LAG.remove(self.group_id, topic, str(partition))
        self._lag_labels = current


def serve(runners: Sequence[ConsumerRunner]) -> None:
    """Run ``runners`` (a thread each) until SIGTERM/SIGINT, then stop them gracefully.

    Call from the main thread. If one runner fails, the others are stopped and the error is
    re-raised.
    """
    errors: list[BaseException] = []

    def stop_all(_signum: int = 0, _frame: FrameType | None = None) -> None:
        for runner in runners:
            runner.stop()

    def guarded(runner: ConsumerRunner) -> None:
        try:
            runner.run()
        except BaseException as exc:
            errors.append(exc)
            stop_all()

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads = [
        threading.Thread(target=guarded, args=(runner,), name=f"consumer-{runner.group_id}")
        for runner in runners
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)  # short joins let the main thread run signal handlers
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if errors:
        raise errors[0]
