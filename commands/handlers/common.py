"""Helpers every handler uses: the access check and the event trace."""

from __future__ import annotations

from typing import Any

from commands.errors import AccessDenied
from commands.policy import Action, Actor, Resource, decide
from commands.results import CommandContext


def authorize(ctx: CommandContext, action: Action, kind: str, owner_id: str | None = None) -> None:
    """Every command passes here: the access policy decides, a refusal raises AccessDenied."""
    decision = decide(Actor(ctx.actor, ctx.roles), action, Resource(kind, owner_id))
    if not decision.allowed:
        raise AccessDenied(decision.reason)


def trace(ctx: CommandContext) -> dict[str, Any]:
    """The keyword arguments that stamp an event with who did it and in which flow."""
    return {"actor": ctx.actor, "correlation_id": ctx.correlation_id}
