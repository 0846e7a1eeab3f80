"""Dead-letter topics: what a dead letter carries, writing one, reading and replaying them.

A parked message (see `stream.parking`) is copied to ``<source topic>.dlq`` byte for byte (same
key, same value, its original headers) plus ``dlq_*`` headers saying where it came from, which
group parked it and why. The copies are for people and alerts; replays go through the parking lot.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from infra.settings import Settings
from stream.envelope import decode
from stream.producer import PublishError, producer_config
from stream.topics import dead_letter_topic

Headers = list[tuple[str, bytes]]

ERROR = "dlq_error"
SOURCE_TOPIC = "dlq_source_topic"
SOURCE_PARTITION = "dlq_source_partition"
SOURCE_OFFSET = "dlq_source_offset"
ATTEMPTS = "dlq_attempts"
FAILED_AT = "dlq_failed_at"
GROUP = "dlq_group"
PARKED_BEHIND = "dlq_parked_behind"
DIAGNOSTIC_HEADERS = frozenset(
    {ERROR, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, ATTEMPTS, FAILED_AT}
    | {GROUP, PARKED_BEHIND}
)
MAX_ERROR_CHARS = 2000


def describe_error(error: BaseException) -> str:
    """``ExceptionType: message``, cut to a size that fits comfortably in a header."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def utc_timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def original_headers(headers: Sequence[tuple[str, bytes]]) -> Headers:
    """The headers the message had on its source topic (a dead letter's diagnostics removed)."""
    return [(name, value) for name, value in headers if name not in DIAGNOSTIC_HEADERS]


def dead_letter_headers(
    headers: Sequence[tuple[str, bytes]],
    *,
    error: BaseException,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    attempts: int,
    failed_at: dt.datetime,
    group_id: str | None = None,
    behind: str | None = None,
) -> Headers:
    """The original headers followed by the ``dlq_*`` diagnostics of this failure: the consumer
    group that parked it and, for a message parked behind its key's poison event, where that is."""
    diagnostics = [
        *original_headers(headers),
        (ERROR, describe_error(error).encode()),
        (SOURCE_TOPIC, source_topic.encode()),
        (SOURCE_PARTITION, str(source_partition).encode()),
        (SOURCE_OFFSET, str(source_offset).encode()),
        (ATTEMPTS, str(attempts).encode()),
        (FAILED_AT, utc_timestamp(failed_at).encode()),
    ]
    if group_id is not None:
        diagnostics.append((GROUP, group_id.encode()))
    if behind is not None:
        diagnostics.append((PARKED_BEHIND, behind.encode()))
    return diagnostics


@dataclass(frozen=True)
class Written:
    """Where the broker stored a produced message."""

    topic: str
    partition: int
    offset: int


class DeadLetterPublisher(Protocol):
    """Writes one message and returns only once the broker acknowledged it (acks=all)."""

    def publish(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> Written: ...

    def close(self) -> None: ...


class KafkaPublisher:
    """Publishes on librdkafka with the relay's producer settings (`producer_config`: acks=all,
    the same partitioner), so a dead letter lands on the partition number its key has on the
    source topic. Each publish waits for its acknowledgement; dead letters are rare.
    """

    def __init__(self, settings: Settings, client_id: str, timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._client_id = client_id
        self._timeout_s = timeout_s
        self._producer: Any = None

    def _connected(self) -> Any:
        """The producer, created on first use (most consumers never dead-letter anything)."""
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(
                producer_config(self._settings, self._client_id)
                | {"message.timeout.ms": int(self._timeout_s * 1000), "linger.ms": 0}
            )
        return self._producer

    def publish(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> Written:
        producer = self._connected()
        reports: list[tuple[Any, Any]] = []
        producer.produce(
            topic,
            value=value,
            key=key,
            headers=list(headers),
            on_delivery=lambda error, message: reports.append((error, message)),
        )
        producer.flush(self._timeout_s)
        if not reports:
            raise PublishError(f"no acknowledgement from Kafka for {topic} in {self._timeout_s}s")
        error, message = reports[0]
        if error is not None:
            raise PublishError(f"Kafka refused the message for {topic}: {error}")
        return Written(message.topic(), message.partition(), message.offset())

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._timeout_s)
            self._producer = None


@dataclass(frozen=True)
class DeadLetter:
    """One message of a dead-letter topic, with its diagnostics parsed."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Headers

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        return values[-1].decode(errors="replace") if values else None

    def event_field(self, header: str, field: str) -> str | None:
        """A routing field from its header, else from the envelope (None if undecodable)."""
        found = self.header(header)
        if found is not None:
            return found
        try:
            return str(getattr(decode(self.value), field))
        except msgspec.MsgspecError:
            return None

    def summary(self) -> dict[str, Any]:
        """What ``iconmarket dlq list`` prints for this dead letter."""
        partition = self.header(SOURCE_PARTITION)
        offset = self.header(SOURCE_OFFSET)
        attempts = self.header(ATTEMPTS)
        return {
            "dlq_topic": self.dlq_topic,
            "dlq_partition": self.dlq_partition,
            "dlq_offset": self.dlq_offset,
            "source_topic": self.header(SOURCE_TOPIC),
            "source_partition": int(partition) if partition is not None else None,
            "source_offset": int(offset) if offset is not None else None,
            "attempts": int(attempts) if attempts is not None else None,
            "error": self.header(ERROR),
            "failed_at": self.header(FAILED_AT),
            "event_type": self.event_field("event_type", "type"),
            "event_id": self.event_field("event_id", "event_id"),
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "group": self.header(GROUP),
            "parked_behind": self.header(PARKED_BEHIND),
        }


class DeadLetterError(RuntimeError):
    """A dead-letter topic is missing or could not be read completely in time."""


@dataclass(frozen=True)
class DeadLetters:
    """The messages read from one source topic's dead-letter topic, oldest first."""

    letters: list[DeadLetter]
    complete: bool


def read_dead_letters(
    settings: Settings, source_topic: str, timeout_s: float, limit: int | None = None
) -> DeadLetters:
    """Read ``source_topic``'s DLQ from the beginning up to its end offsets as of the call, and
    keep the ``limit`` oldest. ``complete`` is False when ``timeout_s`` ran out before the end.
    """
    from kafka import KafkaConsumer, TopicPartition

    topic = dead_letter_topic(source_topic)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="iconmarket-dlq-reader",
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
    )
    deadline = time.monotonic() + timeout_s
    letters: list[DeadLetter] = []
    complete = True
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise DeadLetterError(f"topic {topic} does not exist (run `iconmarket init`)")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends: dict[Any, int] = consumer.end_offsets(assigned)
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                complete = False
                break
            polled = consumer.poll(timeout_ms=int(min(remaining, 1.0) * 1000))
            for tp in sorted(polled):
                letters += [_dead_letter(r) for r in polled[tp] if r.offset < ends[tp]]
    finally:
        consumer.close(autocommit=False)
    letters.sort(key=lambda letter: (letter.timestamp_ms, letter.dlq_partition, letter.dlq_offset))
    return DeadLetters(letters[:limit] if limit is not None else letters, complete)


def _dead_letter(record: Any) -> DeadLetter:
    return DeadLetter(
        dlq_topic=record.topic,
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=[(name, value or b"") for name, value in record.headers or []],
    )
