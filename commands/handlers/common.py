"""Helpers every handler uses: the access check, the event trace, the customer's library."""

from __future__ import annotations

from typing import Any

from commands.errors import AccessDenied
from commands.policy import Action, Actor, Resource, decide
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.library import Library


def authorize(ctx: CommandContext, action: Action, kind: str, owner_id: str | None = None) -> None:
    """Every command passes here: the access policy decides, a refusal raises AccessDenied."""
    decision = decide(Actor(ctx.actor, ctx.roles), action, Resource(kind, owner_id))
    if not decision.allowed:
        raise AccessDenied(decision.reason)


def trace(ctx: CommandContext) -> dict[str, Any]:
    """The keyword arguments that stamp an event with who did it and in which flow."""
    return {"actor": ctx.actor, "correlation_id": ctx.correlation_id}


def open_library(uow: UnitOfWork, customer_id: str, ctx: CommandContext) -> Library:
    """The customer's library, opened (in this unit of work) on first use."""
    library_id = Library.create_id(customer_id)
    if uow.exists(library_id):
        return uow.get(Library, library_id)
    return uow.add(Library.open(customer_id=customer_id, **trace(ctx)))
