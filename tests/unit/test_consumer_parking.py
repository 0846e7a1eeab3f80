"""Parking per key without a broker: a poison event parks its key's later events; transient
failures park nothing; operators' replay and skip requests are carried out in key order."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from stream import envelope as env
from stream.consumer import Backoff, BatchProcessor, Delivery, Record, RetryPolicy, to_delivery
from stream.dlq import Headers, Written
from tests.fakes.parking import MemoryParkingLot

POLICY = RetryPolicy(max_attempts=2, batch_attempts=1, backoff=Backoff(0.1, 2.0, 0.4))


def _delivery(offset: int, key: str, version: int, partition: int = 0) -> Delivery:
    envelope = env.Envelope(
        event_id=f"{key}-{version}",
        type="Cart.IconAdded",
        schema_version=1,
        context="commerce",
        aggregate_type="Cart",
        aggregate_id=key,
        aggregate_version=version,
        position=offset + 1,
        occurred_at="2025-01-01T00:00:00Z",
        actor="user:ada",
        correlation_id="corr-1",
        causation_id=None,
        data={},
    )
    return to_delivery(
        Record("t.v1", partition, offset, key.encode(), env.encode(envelope), env.headers(envelope))
    )


class View:
    """A "newer version wins" view; refuses the versions in ``poison`` while they are set."""

    def __init__(self, poison: set[tuple[str, int]] | None = None) -> None:
        self.poison = poison or set()
        self.versions: dict[str, int] = {}
        self.applied: list[tuple[str, int]] = []
        self.down = 0  # the next calls fail as if Redis were down

    def __call__(self, deliveries: Sequence[Delivery], /) -> None:
        if self.down:
            self.down -= 1
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:16379")
        for delivery in deliveries:
            event = delivery.event
            if (event.aggregate_id, event.aggregate_version) in self.poison:
                raise ValueError(f"cannot apply {event.event_id}")
            if event.aggregate_version > self.versions.get(event.aggregate_id, 0):
                self.versions[event.aggregate_id] = event.aggregate_version
                self.applied.append((event.aggregate_id, event.aggregate_version))


class Publisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes | None, Headers]] = []

    def publish(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> Written:
        self.published.append((topic, key, headers))
        return Written(topic, 0, len(self.published) - 1)

    def close(self) -> None:
        pass


def _processor(
    view: View, parking: MemoryParkingLot, stop_after_waits: int | None = None
) -> tuple[BatchProcessor, Publisher, list[float]]:
    publisher = Publisher()
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return stop_after_waits is not None and len(waits) >= stop_after_waits

    processor = BatchProcessor(
        "g1", view, policy=POLICY, dead_letters=publisher, wait=wait, parking=parking
    )
    return processor, publisher, waits


def _parked(parking: MemoryParkingLot) -> list[tuple[int, str | None, str | None]]:
    return [(e.offset, e.key.decode() if e.key else None, e.behind) for e in parking.entries("g1")]


def test_a_poison_event_parks_its_key_and_the_later_events_of_that_key_only() -> None:
    view = View(poison={("a", 2)})
    parking = MemoryParkingLot()
    processor, publisher, _ = _processor(view, parking)

    first = [_delivery(0, "a", 1), _delivery(1, "a", 2), _delivery(2, "b", 1), _delivery(3, "a", 3)]
    progress = processor.process(first)
    later = processor.process([_delivery(4, "a", 4), _delivery(5, "b", 2)])

    assert progress.next_offsets == {("t.v1", 0): 4}
    assert later.next_offsets == {("t.v1", 0): 6}
    assert view.versions == {"a": 1, "b": 2}
    assert _parked(parking) == [
        (1, "a", None),
        (3, "a", "t.v1/0/1"),
        (4, "a", "t.v1/0/1"),
    ]
    assert parking.entries("g1")[0].error == "ValueError: cannot apply a-2"
    assert parking.entries("g1")[0].attempts == 2
    assert [
        (topic, key, dict(h).get("dlq_parked_behind")) for topic, key, h in publisher.published
    ] == [
        ("t.v1.dlq", b"a", None),
        ("t.v1.dlq", b"a", b"t.v1/0/1"),
        ("t.v1.dlq", b"a", b"t.v1/0/1"),
    ]


def test_a_dependency_outage_is_waited_out_and_parks_nothing() -> None:
    view = View()
    view.down = 6  # more failures than max_attempts allows for poison
    parking = MemoryParkingLot()
    processor, publisher, waits = _processor(view, parking)

    progress = processor.process([_delivery(0, "a", 1), _delivery(1, "b", 1)])

    assert progress.complete
    assert progress.next_offsets == {("t.v1", 0): 2}
    assert view.applied == [("a", 1), ("b", 1)]
    assert waits == [0.1, 0.2, 0.4, 0.4, 0.4, 0.4]
    assert parking.entries("g1") == []
    assert publisher.published == []


def test_a_parking_store_outage_is_waited_out_before_the_offsets_move() -> None:
    view = View(poison={("a", 1)})
    parking = MemoryParkingLot()
    processor, _, _ = _processor(view, parking)
    processor.process([_delivery(0, "b", 1)])  # parked keys loaded
    parking.fail_next = [redis.ConnectionError("down"), redis.ConnectionError("down")]

    progress = processor.process([_delivery(1, "a", 1)])

    assert progress.next_offsets == {("t.v1", 0): 2}
    assert _parked(parking) == [(1, "a", None)]


def test_stopping_while_the_parking_store_is_down_commits_nothing_after_it() -> None:
    view = View(poison={("a", 1)})
    parking = MemoryParkingLot()
    processor, _, _ = _processor(view, parking, stop_after_waits=1)
    processor.process([])
    parking.fail_next = [redis.ConnectionError("down")]

    progress = processor.process([_delivery(0, "a", 1), _delivery(1, "b", 1)])

    assert not progress.complete
    assert progress.next_offsets == {}
    assert parking.entries("g1") == []


def test_replay_applies_the_parked_events_in_order_then_releases_the_key() -> None:
    view = View(poison={("a", 2)})
    parking = MemoryParkingLot()
    processor, _, _ = _processor(view, parking)
    processor.process([_delivery(n, "a", n + 1) for n in range(4)])
    assert view.versions == {"a": 1}

    view.poison.clear()  # the cause was fixed
    request = parking.request("g1", "replay", b"a", "ops:ada", "fixed the mapping")
    assert processor.resolve_requests()
    processor.process([_delivery(4, "a", 5)])

    assert view.applied == [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5)]
    assert parking.entries("g1") == []
    assert parking.outcome(request) == {
        "action": "replay",
        "requested_by": "ops:ada",
        "reason": "fixed the mapping",
        "applied": 3,
        "skipped": 0,
        "still_parked": 0,
    }


def test_a_replay_that_still_fails_keeps_the_key_parked_from_that_event_on() -> None:
    view = View(poison={("a", 2)})
    parking = MemoryParkingLot()
    processor, _, _ = _processor(view, parking)
    processor.process([_delivery(n, "a", n + 1) for n in range(3)])

    request = parking.request("g1", "replay", None, "ops:ada", "")
    assert processor.resolve_requests()
    processor.process([_delivery(3, "a", 4)])

    assert view.versions == {"a": 1}
    assert _parked(parking) == [(1, "a", None), (2, "a", "t.v1/0/1"), (3, "a", "t.v1/0/1")]
    outcome = parking.outcome(request)
    assert outcome is not None
    assert (outcome["applied"], outcome["still_parked"]) == (0, 2)


def test_skip_drops_the_parked_events_and_records_who_and_why() -> None:
    view = View(poison={("a", 2)})
    parking = MemoryParkingLot()
    processor, _, _ = _processor(view, parking)
    processor.process([_delivery(n, "a", n + 1) for n in range(3)])

    request = parking.request("g1", "skip", b"a", "ops:bob", "event written by a bug")
    assert processor.resolve_requests()
    processor.process([_delivery(3, "a", 4)])

    assert view.applied == [("a", 1), ("a", 4)]
    assert parking.entries("g1") == []
    outcome = parking.outcome(request)
    assert outcome is not None
    assert (outcome["requested_by"], outcome["reason"], outcome["skipped"]) == (
        "ops:bob",
        "event written by a bug",
        2,
    )


def test_requests_are_carried_out_only_for_the_partitions_assigned_here() -> None:
    view = View(poison={("a", 1), ("b", 1)})
    parking = MemoryParkingLot()
    processor, _, _ = _processor(view, parking)
    processor.process([_delivery(0, "a", 1, partition=0), _delivery(0, "b", 1, partition=1)])
    view.poison.clear()

    request = parking.request("g1", "replay", None, "ops:ada", "")
    assert processor.resolve_requests({("t.v1", 0)})

    assert view.applied == [("a", 1)]
    assert _parked(parking) == [(0, "b", None)]
    assert parking.outcome(request) is None  # partition 1's member has not done its part
