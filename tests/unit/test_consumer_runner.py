"""The consumer runner's logic without a broker: backoff, retry decisions, batch isolation,
dead-letter headers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from stream import envelope as env
from stream.consumer import (
    Backoff,
    BatchProcessor,
    Delivery,
    Handler,
    RetryPolicy,
    Step,
    UndecodableMessage,
    to_delivery,
)
from stream.dlq import (
    DeadLetter,
    Headers,
    Written,
    dead_letter_headers,
    original_headers,
)
from stream.failures import TransientError
from tests.fakes.parking import MemoryParkingLot

FAILED_AT = dt.datetime(2025, 3, 4, 5, 6, 7, 890_000, tzinfo=dt.UTC)


def _envelope(n: int) -> env.Envelope:
    return env.Envelope(
        event_id=f"event-{n}",
        type="Icon.Published",
        schema_version=1,
        context="catalog",
        aggregate_type="Icon",
        aggregate_id=f"icon-{n}",
        aggregate_version=1,
        position=n,
        occurred_at="2025-01-01T00:00:00Z",
        actor="user:ada",
        correlation_id="corr-1",
        causation_id=None,
        data={"n": n},
    )


def _record(offset: int, value: bytes | None = None, partition: int = 0) -> ConsumerRecord:
    envelope = _envelope(offset)
    return ConsumerRecord(
        topic="t.v1",
        partition=partition,
        leader_epoch=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=env.key(envelope),
        value=env.encode(envelope) if value is None else value,
        headers=env.headers(envelope),
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        serialized_header_size=0,
    )


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes | None, bytes, Headers]] = []

    def publish(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> Written:
        self.published.append((topic, key, value, headers))
        return Written(topic, 0, len(self.published) - 1)

    def close(self) -> None:
        pass


class RecordingHandler:
    """Raises for every batch containing a poison offset; records each call's offsets."""

    def __init__(self, poison: frozenset[int] = frozenset(), transient_failures: int = 0) -> None:
        self.poison = poison
        self.transient_failures = transient_failures
        self.calls: list[list[int]] = []

    def __call__(self, deliveries: Sequence[Delivery], /) -> None:
        offsets = [delivery.offset for delivery in deliveries]
        self.calls.append(offsets)
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientError("view store down")
        for delivery in deliveries:
            if delivery.offset in self.poison:
                raise ValueError(f"cannot apply offset {delivery.offset}")
            delivery.event  # noqa: B018 - raises for an undecodable message


def _processor(
    handler: Handler,
    policy: RetryPolicy,
    stop_after_waits: int | None = None,
    parking: MemoryParkingLot | None = None,
) -> tuple[BatchProcessor, FakePublisher, list[float]]:
    publisher = FakePublisher()
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return stop_after_waits is not None and len(waits) >= stop_after_waits

    processor = BatchProcessor(
        "g1",
        handler,
        policy=policy,
        dead_letters=publisher,
        wait=wait,
        parking=parking if parking is not None else MemoryParkingLot(),
        now=lambda: FAILED_AT,
    )
    return processor, publisher, waits


def test_the_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=0.1, factor=2.0, max_s=2.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


def test_a_batch_is_retried_then_split_and_a_single_message_is_retried_then_dead_lettered() -> None:
    policy = RetryPolicy(max_attempts=5, batch_attempts=2)
    assert [policy.after_failure(failures=n, solo=False) for n in (1, 2, 3)] == [
        Step.RETRY,
        Step.SPLIT,
        Step.SPLIT,
    ]
    assert [policy.after_failure(failures=n, solo=True) for n in (1, 2, 3, 4, 5)] == [
        Step.RETRY,
        Step.RETRY,
        Step.RETRY,
        Step.RETRY,
        Step.DEAD_LETTER,
    ]


def test_batch_attempts_leave_room_for_each_message_to_be_tried_alone() -> None:
    assert RetryPolicy(max_attempts=2, batch_attempts=4).batch_limit == 1
    assert RetryPolicy(max_attempts=3, batch_attempts=4).batch_limit == 2
    assert RetryPolicy(max_attempts=1).batch_limit == 1
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


def test_dead_letter_headers_keep_the_original_headers_and_add_the_diagnostics() -> None:
    original = [("event_id", b"e-1"), ("event_type", b"Icon.Published")]
    headers = dead_letter_headers(
        original,
        error=KeyError("price"),
        source_topic="iconmarket.catalog.v1",
        source_partition=2,
        source_offset=41,
        attempts=5,
        failed_at=FAILED_AT,
    )
    assert headers == [
        ("event_id", b"e-1"),
        ("event_type", b"Icon.Published"),
        ("dlq_error", b"KeyError: 'price'"),
        ("dlq_source_topic", b"iconmarket.catalog.v1"),
        ("dlq_source_partition", b"2"),
        ("dlq_source_offset", b"41"),
        ("dlq_attempts", b"5"),
        ("dlq_failed_at", b"2025-03-04T05:06:07.890Z"),
    ]
    assert original_headers(headers) == original


def test_an_error_message_is_cut_to_fit_a_header() -> None:
    headers = dead_letter_headers(
        [],
        error=ValueError("x" * 5000),
        source_topic="t",
        source_partition=0,
        source_offset=0,
        attempts=1,
        failed_at=FAILED_AT,
    )
    error = dict(headers)["dlq_error"].decode()
    assert len(error) == 2000
    assert error.startswith("ValueError: xxx")
    assert error.endswith("…")


def test_a_delivery_decodes_the_envelope_and_keeps_the_raw_message() -> None:
    delivery = to_delivery(_record(3))
    assert delivery.event == _envelope(3)
    assert delivery.key == b"icon-3"
    assert delivery.headers["event_id"] == b"event-3"
    assert delivery.raw_headers == tuple(env.headers(_envelope(3)))


def test_undecodable_bytes_are_delivered_raw_and_reading_the_event_raises() -> None:
    delivery = to_delivery(_record(4, value=b"{not json"))
    assert delivery.envelope is None
    assert delivery.value == b"{not json"
    with pytest.raises(UndecodableMessage):
        delivery.event  # noqa: B018


def test_a_healthy_batch_is_handled_in_one_call_and_fully_committed() -> None:
    handler = RecordingHandler()
    processor, publisher, waits = _processor(handler, RetryPolicy())
    progress = processor.process([to_delivery(_record(n)) for n in range(4)])
    assert handler.calls == [[0, 1, 2, 3]]
    assert progress.next_offsets == {("t.v1", 0): 4}
    assert progress.complete
    assert publisher.published == []
    assert waits == []


def test_a_poison_message_is_isolated_and_dead_lettered_after_max_attempts() -> None:
    handler = RecordingHandler(poison=frozenset({1}))
    policy = RetryPolicy(max_attempts=4, batch_attempts=2, backoff=Backoff(0.1, 2.0, 0.3))
    processor, publisher, waits = _processor(handler, policy)
    records = [_record(n) for n in range(3)]

    progress = processor.process([to_delivery(record) for record in records])

    assert handler.calls == [[0, 1, 2], [0, 1, 2], [0], [1], [1], [2]]
    assert waits == [0.1, 0.3]  # after batch failure 1 and solo failure 3 (capped)
    assert progress.next_offsets == {("t.v1", 0): 3}
    assert progress.complete
    [(topic, key, value, headers)] = publisher.published
    assert (topic, key, value) == ("t.v1.dlq", b"icon-1", records[1].value)
    assert headers == [
        *env.headers(_envelope(1)),
        ("dlq_error", b"ValueError: cannot apply offset 1"),
        ("dlq_source_topic", b"t.v1"),
        ("dlq_source_partition", b"0"),
        ("dlq_source_offset", b"1"),
        ("dlq_attempts", b"4"),
        ("dlq_failed_at", b"2025-03-04T05:06:07.890Z"),
        ("dlq_group", b"g1"),
    ]


def test_an_undecodable_message_alone_is_dead_lettered_after_max_attempts() -> None:
    handler = RecordingHandler()
    processor, publisher, _ = _processor(handler, RetryPolicy(max_attempts=3))
    progress = processor.process([to_delivery(_record(7, value=b"garbage"))])
    assert handler.calls == [[7], [7], [7]]
    assert progress.next_offsets == {("t.v1", 0): 8}
    [(_, _, value, headers)] = publisher.published
    assert value == b"garbage"
    error = dict(headers)["dlq_error"].decode()
    assert error.startswith("UndecodableMessage: ")


def test_transient_failures_are_retried_without_counting_toward_max_attempts() -> None:
    handler = RecordingHandler(transient_failures=4)
    processor, publisher, waits = _processor(
        handler, RetryPolicy(max_attempts=2, backoff=Backoff(1.0, 2.0, 3.0))
    )
    progress = processor.process([to_delivery(_record(n)) for n in range(2)])
    assert handler.calls == [[0, 1]] * 5
    assert waits == [1.0, 2.0, 3.0, 3.0]
    assert progress.next_offsets == {("t.v1", 0): 2}
    assert publisher.published == []


def test_stopping_during_a_backoff_keeps_only_the_messages_already_done() -> None:
    handler = RecordingHandler(poison=frozenset({1}))
    processor, publisher, _ = _processor(
        handler, RetryPolicy(max_attempts=5, batch_attempts=1), stop_after_waits=1
    )
    progress = processor.process([to_delivery(_record(n)) for n in range(3)])
    assert handler.calls == [[0, 1, 2], [0], [1]]
    assert progress.next_offsets == {("t.v1", 0): 1}
    assert not progress.complete
    assert publisher.published == []


def test_stopping_during_a_batch_backoff_commits_nothing() -> None:
    handler = RecordingHandler(poison=frozenset({0}))
    processor, _, _ = _processor(handler, RetryPolicy(), stop_after_waits=1)
    progress = processor.process([to_delivery(_record(n)) for n in range(2)])
    assert handler.calls == [[0, 1]]
    assert progress.next_offsets == {}
    assert not progress.complete


def test_partitions_progress_separately() -> None:
    handler = RecordingHandler()
    processor, _, _ = _processor(handler, RetryPolicy())
    records = [_record(5, partition=0), _record(9, partition=2), _record(6, partition=0)]
    progress = processor.process([to_delivery(record) for record in records])
    assert progress.next_offsets == {("t.v1", 0): 7, ("t.v1", 2): 10}


def test_a_dead_letter_summary_names_its_source_and_event() -> None:
    headers = dead_letter_headers(
        env.headers(_envelope(2)),
        error=ValueError("bad"),
        source_topic="t.v1",
        source_partition=1,
        source_offset=12,
        attempts=5,
        failed_at=FAILED_AT,
    )
    letter = DeadLetter("t.v1.dlq", 0, 3, 0, b"icon-2", env.encode(_envelope(2)), headers)
    assert letter.summary() == {
        "dlq_topic": "t.v1.dlq",
        "dlq_partition": 0,
        "dlq_offset": 3,
        "source_topic": "t.v1",
        "source_partition": 1,
        "source_offset": 12,
        "attempts": 5,
        "error": "ValueError: bad",
        "failed_at": "2025-03-04T05:06:07.890Z",
        "event_type": "Icon.Published",
        "event_id": "event-2",
        "key": "icon-2",
        "group": None,
        "parked_behind": None,
    }
