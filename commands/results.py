"""What every command returns, and the context every command runs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID


@dataclass(frozen=True)
class CommandResult:
    """The aggregate a command changed, its version after the change, and the position (the
    notification id of the command's last event) to pass to queries as ``min_position``."""

    aggregate_id: UUID
    version: int
    position: int
    replayed: bool = False


@dataclass(frozen=True, kw_only=True)
class CommandContext:
    """Who runs a command, in which flow, and with which guards."""

    actor: str
    roles: frozenset[str] = field(default_factory=frozenset)
    correlation_id: str
    idempotency_key: str | None = None
    expected_version: int | None = None
