"""Shared fixtures for the pure domain tests (no I/O)."""

from collections.abc import Callable
from typing import Any

import pytest

from domain.errors import DomainError
from domain.traced_aggregate import Trace, TracedAggregate

ACTOR = "account-42"
CORRELATION_ID = "corr-0001"

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]


@pytest.fixture
def trace() -> Trace:
    """The ``actor`` and ``correlation_id`` keyword arguments every command takes."""
    return {"actor": ACTOR, "correlation_id": CORRELATION_ID}


@pytest.fixture
def collect() -> Collect:
    """Collects pending events, asserts each carries the trace, returns their class names."""

    def collect_names(aggregate: TracedAggregate) -> list[str]:
        events: list[Any] = list(aggregate.collect_events())
        for recorded in events:
            assert (recorded.actor, recorded.correlation_id) == (ACTOR, CORRELATION_ID)
            assert recorded.originator_id == aggregate.id
        return [type(recorded).__qualname__ for recorded in events]

    return collect_names


@pytest.fixture
def rejects() -> Rejects:
    """Runs a command that must fail with ``error_type`` and ``code``, appending nothing."""

    def run(
        aggregate: TracedAggregate,
        error_type: type[DomainError],
        code: str,
        command: Callable[[], object],
    ) -> DomainError:
        aggregate.collect_events()
        version = aggregate.version
        with pytest.raises(error_type) as raised:
            command()
        assert raised.value.code == code
        assert list(aggregate.collect_events()) == []
        assert aggregate.version == version
        return raised.value

    return run
