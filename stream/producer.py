"""The relay's Kafka producer port, and its adapter on librdkafka (confluent-kafka).

kafka-python's producer costs ~380 µs of Python per message, which alone held the relay near
2,600 events/s; librdkafka does the batching and delivery in C.
"""

from __future__ import annotations

from typing import Any, Protocol

from infra.settings import Settings

PARTITIONER = "consistent_random"
"""librdkafka's CRC32 of the key (random only for a null key): the one partitioner of every
producer (relay, dead letters), so one key's messages share a partition number on every topic."""


def producer_config(settings: Settings, client_id: str) -> dict[str, Any]:
    """The settings every iconmarket producer shares: acks=all, idempotence, one partitioner."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": PARTITIONER,
    }


class PublishError(RuntimeError):
    """Kafka did not acknowledge every message sent since the last flush. ``codes`` holds the
    librdkafka error code of each message Kafka refused (empty when they only timed out)."""

    def __init__(self, message: str, codes: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.codes = codes


def refused_for_size(error: BaseException) -> bool:
    """Kafka refused the message (or its record batch) as too large: retrying cannot help."""
    from confluent_kafka import KafkaError, KafkaException

    size = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE}
    if isinstance(error, PublishError):
        return bool(size.intersection(error.codes))
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0].code() in size
    return False


class EventProducer(Protocol):
    """Sends messages; ``flush`` returns only when all were acknowledged (acks=all), or raises."""

    def send(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None: ...

    def flush(self, timeout_s: float = 30.0) -> None: ...

    def take_ends(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition), the offset after the last message acknowledged since the
        last call (the log watermark's end offsets); forgets them."""
        ...

    def close(self) -> None: ...


class ConfluentProducer:
    """Idempotent, acks=all: one key's messages are written in send order, exactly once each."""

    def __init__(self, settings: Settings, client_id: str = "iconmarket-relay") -> None:
        from confluent_kafka import Producer

        self._producer = Producer(
            producer_config(settings, client_id)
            | {
                "linger.ms": 2,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
                "message.timeout.ms": 60_000,
            }
        )
        self._errors: list[Any] = []  # the KafkaError of each refused message
        self._ends: dict[tuple[str, int], int] = {}

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._errors.append(error)
            return
        where = (message.topic(), message.partition())
        end = message.offset() + 1
        if end > self._ends.get(where, 0):
            self._ends[where] = end

    def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        routing: list[tuple[str, str | bytes | None]] = list(headers)
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=routing, on_delivery=self._delivered
                )
                break
            except BufferError:
                self._producer.poll(0.05)  # the local queue is full: let deliveries drain
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        errors, self._errors = self._errors, []
        if remaining or errors:
            raise PublishError(
                f"{remaining} message(s) unacknowledged, {len(errors)} failed: "
                f"{[str(error) for error in errors[:3]]}",
                tuple(error.code() for error in errors),
            )

    def take_ends(self) -> dict[tuple[str, int], int]:
        ends, self._ends = self._ends, {}
        return ends

    def close(self) -> None:
        self._producer.flush(10)
