"""An in-memory `stream.parking.ParkingLot`."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from stream.parking import Action, ParkedEvent, ParkRequest


class MemoryParkingLot:
    def __init__(self) -> None:
        self.events: list[ParkedEvent] = []
        self.requests: list[ParkRequest] = []
        self.outcomes: dict[int, dict[str, Any]] = {}
        self._seq = itertools.count(1)
        self.fail_next: list[Exception] = []  # raised by the next calls, one each

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def parked_keys(self, group_id: str) -> set[bytes]:
        self._maybe_fail()
        return {e.key for e in self.events if e.group_id == group_id and e.key is not None}

    def park(self, event: ParkedEvent) -> None:
        self._maybe_fail()
        same = [e for e in self.events if _coordinates(e) == _coordinates(event)]
        if not same:
            self.events.append(dataclasses.replace(event, seq=next(self._seq)))

    def entries(self, group_id: str, key: bytes | None = None) -> list[ParkedEvent]:
        self._maybe_fail()
        return [e for e in self.events if e.group_id == group_id and (key is None or e.key == key)]

    def release(self, event: ParkedEvent) -> None:
        self._maybe_fail()
        self.events = [e for e in self.events if _coordinates(e) != _coordinates(event)]

    def update_failure(self, event: ParkedEvent, error: str, attempts: int) -> None:
        self.events = [
            dataclasses.replace(e, error=error, attempts=attempts)
            if _coordinates(e) == _coordinates(event)
            else e
            for e in self.events
        ]

    def request(
        self, group_id: str, action: Action, key: bytes | None, requested_by: str, reason: str
    ) -> int:
        made = ParkRequest(len(self.requests) + 1, group_id, action, key, requested_by, reason)
        self.requests.append(made)
        return made.id

    def pending_requests(self, group_id: str) -> list[ParkRequest]:
        self._maybe_fail()
        return [r for r in self.requests if r.group_id == group_id and r.id not in self.outcomes]

    def finish(self, request_id: int, outcome: dict[str, Any]) -> None:
        self.outcomes[request_id] = dict(outcome)

    def outcome(self, request_id: int) -> dict[str, Any] | None:
        return self.outcomes.get(request_id)

    def close(self) -> None:
        pass


def _coordinates(event: ParkedEvent) -> tuple[str, str, int, int]:
    return (event.group_id, event.topic, event.partition, event.offset)
