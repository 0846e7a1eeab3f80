"""The consumer runner: the Kafka plumbing every projector and pipeline stage runs inside.

A handler never touches a Kafka client. The runner polls a batch, hands it to the handler as
decoded `Delivery` objects and commits the batch's offsets once the handler returned. Failures
are classified in one place (`stream.failures`): a transient one (a dependency is down) is
retried with capped backoff for as long as it lasts, partitions paused, never dead-lettered. A
poison batch is split and its messages retried one by one, so the poison message is isolated:
once it has failed ``max_attempts`` times it is parked (`stream.parking`) together with every
later message of its key, copied to ``<topic>.dlq`` (acks=all), and the runner moves on.

Delivery is at-least-once (a crash before the commit redelivers the batch; a retried batch
re-runs the messages that had succeeded in it), so handlers must be idempotent.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

import msgspec

from infra.settings import Settings
from stream import metrics
from stream.dlq import DeadLetterPublisher, KafkaPublisher, dead_letter_headers, describe_error
from stream.envelope import Envelope, decode
from stream.failures import Backoff, is_transient
from stream.parking import ParkedEvent, ParkingLot, ParkRequest, PostgresParkingLot, in_partitions
from stream.topics import dead_letter_topic

log = logging.getLogger("iconmarket.consumer")
kafka_client_log = logging.getLogger("iconmarket.consumer.librdkafka")

Partition = tuple[str, int]

METADATA_MAX_AGE_MS = 5_000
# How long a batch waits for more already-flowing messages after its first one.
BATCH_LINGER_S = 0.002


class UndecodableMessage(ValueError):
    """The message's bytes are not a valid envelope: a poison message."""


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


class KeyParked(Exception):
    """Why a message was parked without being tried: an earlier event of its key is parked."""


class BatchProcessor:
    """Runs the handler over one polled batch: failure classes, isolation, parking. No consumer.

    A failure is classified by `stream.failures.classify`: a transient one (a dependency is down)
    is retried with capped backoff for as long as it lasts and never parks anything; a poison one
    is retried up to the policy's attempts, then the message is parked (`stream.parking`) with
    every later message of its key, and copied to the dead-letter topic.

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
        parking: ParkingLot,
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.group_id = group_id
        self._handler = handler
        self._policy = policy
        self._dead_letters = dead_letters
        self._wait = wait
        self._parking = parking
        self._now = now
        self._parked: set[bytes] | None = None
        self._blockers: dict[bytes, str] = {}
        self._reload = False

    def reload_parked(self) -> None:
        """Read the parked keys again before the next batch (the assignment changed)."""
        self._reload = True

    def process(self, deliveries: Sequence[Delivery]) -> Progress:
        parked = self._parked_keys()
        if parked is None:
            return Progress(complete=False)
        progress = Progress()
        live = [d for d in deliveries if d.key is None or d.key not in parked]
        prior = 0
        applied_all = False
        if len(live) > 1:
            outcome = self._attempt(live, failures=0, solo=False)
            if outcome.stopped:
                return Progress(complete=False)
            applied_all = outcome.step is None
            if not applied_all:
                prior = outcome.failures
                log.warning(
                    "batch keeps failing; retrying its messages one by one",
                    extra={"group": self.group_id, "size": len(live), "attempts": prior},
                )
        for delivery in deliveries:
            if delivery.key is not None and delivery.key in parked:
                if not self._park(delivery, None, 0):
                    progress.complete = False
                    return progress
            elif not applied_all:
                outcome = self._attempt([delivery], failures=prior, solo=True)
                if outcome.stopped:
                    progress.complete = False
                    return progress
                if outcome.step is Step.DEAD_LETTER:
                    assert outcome.error is not None
                    if not self._park(delivery, outcome.error, outcome.failures):
                        progress.complete = False
                        return progress
            progress.done(delivery)
        return progress

    def resolve_requests(self, partitions: Collection[Partition] | None = None) -> bool:
        """Carry out the operators' pending replay/skip requests for the events parked on
        ``partitions`` (None: all). Returns False when the runner is stopping."""
        found: list[list[ParkRequest]] = []
        if not self._durably("read park requests", lambda: found.append(self._pending())):
            return False
        return all(self._resolve(request, partitions) for request in found[0])

    def _pending(self) -> list[ParkRequest]:
        return self._parking.pending_requests(self.group_id)

    def _resolve(self, request: ParkRequest, partitions: Collection[Partition] | None) -> bool:
        found: list[list[ParkedEvent]] = []
        if not self._durably(
            "read parked events",
            lambda: found.append(self._parking.entries(self.group_id, request.key)),
        ):
            return False
        mine = in_partitions(found[0], partitions)
        outcome: dict[str, Any] = {
            "action": request.action,
            "requested_by": request.requested_by,
            "reason": request.reason,
            "applied": 0,
            "skipped": 0,
            "still_parked": 0,
        }
        by_key: dict[bytes | None, list[ParkedEvent]] = {}
        for event in mine:
            by_key.setdefault(event.key, []).append(event)
        for key, events in by_key.items():
            if not self._resolve_key(request, key, events, outcome):
                return False
        if len(mine) == len(found[0]):  # nothing left on another member's partitions
            if not self._durably(
                "finish park request", lambda: self._parking.finish(request.id, outcome)
            ):
                return False
            log.info(
                "park request carried out",
                extra={"group": self.group_id, "request": request.id, **outcome},
            )
        return True

    def _resolve_key(
        self,
        request: ParkRequest,
        key: bytes | None,
        events: Sequence[ParkedEvent],
        outcome: dict[str, Any],
    ) -> bool:
        for index, event in enumerate(events):
            if request.action == "replay":
                delivery = to_delivery(
                    Record(
                        event.topic, event.partition, event.offset, key, event.value, event.headers
                    )
                )
                result = self._attempt([delivery], failures=0, solo=True)
                if result.stopped:
                    return False
                if result.step is Step.DEAD_LETTER:
                    error = describe_error(result.error or Exception())
                    record_failure = functools.partial(
                        self._parking.update_failure, event, error, result.failures
                    )
                    if not self._durably("record a parked event's failure", record_failure):
                        return False
                    outcome["still_parked"] += len(events) - index
                    return True
            if not self._durably(
                "release a parked event", functools.partial(self._parking.release, event)
            ):
                return False
            outcome["applied" if request.action == "replay" else "skipped"] += 1
            metrics.UNPARKED.labels(self.group_id, event.topic, request.action).inc()
        if key is not None and self._parked is not None:
            self._parked.discard(key)
            self._blockers.pop(key, None)
        return True

    def _parked_keys(self) -> set[bytes] | None:
        if self._parked is None or self._reload:
            loaded: list[set[bytes]] = []
            if not self._durably(
                "load parked keys",
                lambda: loaded.append(self._parking.parked_keys(self.group_id)),
            ):
                return None
            self._parked, self._reload = loaded[0], False
        return self._parked

    def _durably(self, what: str, action: Callable[[], object]) -> bool:
        """Run ``action``, waiting out transient failures; False when the runner is stopping.
        Any other failure propagates (a bug, not a dependency)."""
        failures = 0
        while True:
            try:
                action()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                delay = self._policy.backoff.delay(failures)
                metrics.TRANSIENT_FAILURES.labels(self.group_id, what).inc()
                log.warning(
                    "dependency unavailable; retrying",
                    extra={"group": self.group_id, "doing": what, "error": repr(exc)},
                )
                if self._wait(delay):
                    return False
            else:
                return True

    def _attempt(self, deliveries: Sequence[Delivery], *, failures: int, solo: bool) -> _Outcome:
        transient = 0
        while True:
            try:
                self._handler(deliveries)
            except Exception as exc:
                self._count_failure(deliveries, solo)
                if is_transient(exc):
                    transient += 1
                    delay = self._policy.backoff.delay(transient)
                    metrics.TRANSIENT_FAILURES.labels(self.group_id, "handle").inc()
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

    def _park(self, delivery: Delivery, error: Exception | None, attempts: int) -> bool:
        """Park ``delivery`` (the poison itself when ``error`` is given, else a message behind an
        earlier parked event of its key): stored, then copied to the DLQ. False when stopping."""
        coordinates = f"{delivery.topic}/{delivery.partition}/{delivery.offset}"
        behind = None
        if error is None:
            assert delivery.key is not None
            behind = self._blockers.get(delivery.key, "an earlier parked event of its key")
            error = KeyParked(f"parked behind {behind}")
        event = ParkedEvent(
            group_id=self.group_id,
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
            key=delivery.key,
            value=delivery.value,
            headers=delivery.raw_headers,
            error=describe_error(error),
            attempts=attempts,
            behind=behind,
            seq=0,
        )
        if not self._durably("park", lambda: self._parking.park(event)):
            return False
        if not self._durably(
            "dead-letter", lambda: self._dead_letter(delivery, error, attempts, behind)
        ):
            return False
        if delivery.key is not None and self._parked is not None:
            self._parked.add(delivery.key)
            self._blockers.setdefault(delivery.key, coordinates)
        reason = "poison" if behind is None else "behind"
        metrics.PARKED.labels(self.group_id, delivery.topic, reason).inc()
        return True

    def _dead_letter(
        self, delivery: Delivery, error: Exception, attempts: int, behind: str | None
    ) -> None:
        headers = dead_letter_headers(
            delivery.raw_headers,
            error=error,
            source_topic=delivery.topic,
            source_partition=delivery.partition,
            source_offset=delivery.offset,
            attempts=attempts,
            failed_at=self._now(),
            group_id=self.group_id,
            behind=behind,
        )
        written = self._dead_letters.publish(
            dead_letter_topic(delivery.topic), delivery.key, delivery.value, headers
        )
        if behind is None:
            metrics.DEAD_LETTERED.labels(self.group_id, delivery.topic).inc()
        log.error(
            "message parked" if behind else "message dead-lettered and its key parked",
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


PARK_REQUESTS_EVERY_S = 1.0
WAIT_SLICE_S = 0.5


class ConsumerRunner:
    """One member of a consumer group: poll → handler → retry/park → commit → repeat.

    Nothing connects until `run`, which blocks until `stop` is called (from any thread, or by
    `serve` on SIGTERM/SIGINT): the current batch is finished and committed, then the consumer
    closes. Offsets are committed only after the handler returned or the message was parked.

    While a failure is being retried the runner pauses its partitions and keeps polling, so it
    stays in its group however long a dependency is down, and keeps its lag metrics current;
    messages that were already fetched are kept for after the retry. Between batches it carries
    out the operators' replay/skip requests for its parked events (`stream.parking`).
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
        parking: ParkingLot | None = None,
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
        self._parking = parking or PostgresParkingLot(settings)
        self._stop = threading.Event()
        self._processor = BatchProcessor(
            group_id,
            handler,
            policy=self.policy,
            dead_letters=self._dead_letters,
            wait=self._wait_paused,
            parking=self._parking,
        )
        self._committed: dict[Partition, int] = {}
        self._commits = threading.Condition()
        self._lag_labels: set[Partition] = set()
        self._consumer: Any = None
        self._kept: list[Any] = []  # messages polled while paused, handled next
        self._next: dict[Partition, int] = {}  # next offset to handle, per partition
        self._requests_checked = 0.0

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

        session_ms = int(self.settings.kafka_session_timeout_s * 1000)
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": self.group_id,
                "client.id": self.client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "max.poll.interval.ms": int(self.max_poll_interval_s * 1000),
                # A crashed member's partitions are handed on after this (not the client's
                # default 45 s), so a restarted worker resumes within seconds.
                "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": session_ms // 3,
                # New topics and partitions are noticed within seconds, not minutes.
                "topic.metadata.refresh.interval.ms": METADATA_MAX_AGE_MS,
                "logger": kafka_client_log,
            }
        )
        consumer.subscribe(list(self.topics), on_assign=self._assigned)
        self._consumer = consumer
        log.info("consumer started", extra={"group": self.group_id, "topics": self.topics})
        try:
            while not self._stop.is_set():
                self._cycle(consumer)
        finally:
            self._consumer = None
            try:
                self._dead_letters.close()
                self._parking.close()
            finally:
                consumer.close()
            log.info("consumer stopped", extra={"group": self.group_id})

    def _assigned(self, _consumer: Any, partitions: list[Any]) -> None:
        """A (re)assignment: positions restart from the group's commits; parked keys are reread."""
        for tp in partitions:
            self._next.pop((tp.topic, tp.partition), None)
        self._kept = [m for m in self._kept if (m.topic(), m.partition()) not in self._next]
        self._processor.reload_parked()

    def _poll(self, consumer: Any) -> list[Any]:
        """Wait (up to the poll timeout) for one message, then take what is already fetched, up
        to a batch. ``consume(n, timeout)`` alone waits for n messages or the whole timeout, which
        made a lone event wait up to a second before its projection saw it."""
        if self._kept:
            kept, self._kept = self._kept, []
            return kept
        first = consumer.poll(self.poll_timeout_s)
        if first is None:
            return []
        if self.batch_size == 1:
            return [first]
        more = consumer.consume(num_messages=self.batch_size - 1, timeout=BATCH_LINGER_S)
        return [first, *more]

    def _fresh(self, record: Record) -> bool:
        """False for a message handled already (fetched again after a pause)."""
        return record.offset >= self._next.get((record.topic, record.partition), -1)

    def _cycle(self, consumer: Any) -> None:
        self._resolve_requests(consumer)
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
        records = [record for record in records if self._fresh(record)]
        if records:
            records.sort(key=lambda record: (record.topic, record.partition, record.offset))
            started = time.perf_counter()
            progress = self._processor.process([to_delivery(record) for record in records])
            self._next.update(progress.next_offsets)
            self._commit(consumer, progress.next_offsets)
            metrics.BATCH_DURATION.labels(self.group_id).observe(time.perf_counter() - started)
        self._update_lag(consumer)

    def _resolve_requests(self, consumer: Any) -> None:
        now = time.monotonic()
        if now - self._requests_checked < PARK_REQUESTS_EVERY_S:
            return
        self._requests_checked = now
        from confluent_kafka import KafkaException

        try:
            assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        except KafkaException:
            return
        if assigned:
            self._processor.resolve_requests(assigned)

    def _wait_paused(self, seconds: float) -> bool:
        """Back off for ``seconds`` with the partitions paused, polling to stay in the group and
        measuring lag meanwhile; True when the runner is stopping."""
        consumer = self._consumer
        if consumer is None:
            return self._stop.wait(seconds)
        from confluent_kafka import KafkaException

        metrics.WAITING.labels(self.group_id).set(1)
        try:
            assigned = list(consumer.assignment())
            if assigned:
                consumer.pause(assigned)
        except KafkaException:
            assigned = []
        deadline = time.monotonic() + seconds
        try:
            while not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                message = consumer.poll(min(remaining, WAIT_SLICE_S))
                if message is not None:
                    self._kept.append(message)
                self._update_lag(consumer, cached=False)
        finally:
            if assigned:
                try:
                    consumer.resume(assigned)
                except KafkaException as exc:
                    log.debug("resume after a rebalance", extra={"error": str(exc)})
            metrics.WAITING.labels(self.group_id).set(0)
        return self._stop.is_set()

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
            # The group rebalanced under us (the new owner redelivers this batch), or the broker
            # is unreachable (a later commit covers these offsets).
            log.warning("commit refused", extra={"group": self.group_id, "error": str(exc)})
            return
        with self._commits:
            self._committed.update(next_offsets)
            self._commits.notify_all()

    def _update_lag(self, consumer: Any, *, cached: bool = True) -> None:
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
                # would queue behind the long-polling fetch on the same connection. Paused
                # partitions fetch nothing, so a backing-off runner asks the broker.
                if cached:
                    low, high = consumer.get_watermark_offsets(tp, cached=True)
                else:
                    low, high = consumer.get_watermark_offsets(tp, timeout=WAIT_SLICE_S)
                if high < 0:
                    continue  # nothing fetched there yet
                handled = self._next.get((tp.topic, tp.partition))
                position = handled if handled is not None else tp.offset
                position = position if position >= 0 else max(low, 0)
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
