"""Helpers every handler uses: the access check, the event trace, the customer's library."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from commands.errors import AccessDenied
from commands.policy import Action, Actor, Resource, decide
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.family import Family
from domain.icon_set import IconSet
from domain.library import Library
from domain.publication import PublicationStatus


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


def _published(uow: UnitOfWork, cls: type[IconSet] | type[Family], aggregate_id: UUID) -> bool:
    found = uow.read(uow.apps.catalog, cls, aggregate_id)
    if found.status is not PublicationStatus.PUBLISHED:  # perhaps an old cached copy
        found = uow.read(uow.apps.catalog, cls, aggregate_id, current=True)
    return found.status is PublicationStatus.PUBLISHED


def unpublished_parent(uow: UnitOfWork, set_id: UUID | None, family_id: UUID) -> str | None:
    """Why a product in this set (None: a set itself) and family is off the shelf: an icon is
    on sale (or free to download) only while its set and its family are published too."""
    if set_id is not None and not _published(uow, IconSet, set_id):
        return f"its set {set_id} is not published"
    if not _published(uow, Family, family_id):
        return f"its family {family_id} is not published"
    return None
