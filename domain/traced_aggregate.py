"""The base of every iconmarket aggregate: each event records who did it and in which flow."""

from typing import Any, TypedDict

from eventsourcing.domain import Aggregate

from domain.errors import ErrorCode, InvalidValue


class Trace(TypedDict):
    """Who issued a command and in which flow: splat it into any command, ``**trace``."""

    actor: str
    correlation_id: str


class TracedAggregate(Aggregate):
    """An aggregate whose every event carries ``actor`` and ``correlation_id``.

    Each event is an explicit, typed class nested in its aggregate (``Icon.Published``), so
    type checkers and schema generators see it; the private method that applies it is bound to it
    with ``@event(Published)``. Public command methods decide (run the ``_check_*`` invariants),
    then call that method, so replaying history never re-validates recorded facts. Commands take
    ``actor`` and ``correlation_id`` as keyword arguments and pass them through to the event.

    Upcasters go here, on the event classes: to evolve a stored event, set ``class_version = 2``
    on it and add a static ``upcast_v1_v2(state: dict[str, Any]) -> None``; stored v1 events are
    upcast when read. Snapshot state evolves the same way with ``class_version`` and
    ``upcast_vN_vM`` on the aggregate class. Aggregate state holds JSON-friendly primitives only,
    so snapshots need no extra transcodings.
    """

    class Event(Aggregate.Event):
        actor: str
        correlation_id: str

        def __post_init__(self) -> None:
            super().__post_init__()
            _check_trace(self.actor, ErrorCode.ACTOR_REQUIRED)
            _check_trace(self.correlation_id, ErrorCode.CORRELATION_ID_REQUIRED)

    class Created(Event, Aggregate.Created):
        pass


def _check_trace(value: Any, code: ErrorCode) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(code, f"{code.value.replace('_', ' ')}: got {value!r}")
