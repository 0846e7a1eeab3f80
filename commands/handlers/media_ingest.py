"""Handlers of media ingestion (catalog context): a zip batch import's request and report.

Every one is authorized as creating icons in the import's set: the API's request runs as the
caller, and the import worker runs the import (its icons and its report) as the same actor, with
the roles recorded in the request.
"""

from __future__ import annotations

from uuid import UUID

from commands import messages as m
from commands.errors import AlreadyExists
from commands.handlers.common import authorize, trace
from commands.policy import Action
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.icon_import import IconImport, import_id_for
from domain.icon_set import IconSet


def request_import(cmd: m.RequestImport, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon_set = uow.read(uow.app, IconSet, cmd.set_id)
    authorize(ctx, Action.ICON_CREATE, "set", icon_set.owner_id)
    if uow.exists(import_id_for(cmd.set_id, cmd.zip_hash, cmd.request_key)):
        raise AlreadyExists("this zip was already imported into the set with this key")
    pending = IconImport.request(
        set_id=icon_set.id,
        owner_id=icon_set.owner_id,
        zip_hash=cmd.zip_hash,
        request_key=cmd.request_key,
        zip_key=cmd.zip_key,
        size_bytes=cmd.size_bytes,
        roles=sorted(ctx.roles),
        **trace(ctx),
    )
    return uow.add(pending).id


def complete_import(cmd: m.CompleteImport, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    found = uow.get(IconImport, cmd.import_id)
    authorize(ctx, Action.ICON_CREATE, "set", found.owner_id)
    found.complete(
        created=[{"file": item.file, "icon_id": str(item.icon_id)} for item in cmd.created],
        rejected=[
            {"file": item.file, "code": item.code, "detail": item.detail} for item in cmd.rejected
        ],
        **trace(ctx),
    )
    return found.id


def refuse_import(cmd: m.RefuseImport, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    found = uow.get(IconImport, cmd.import_id)
    authorize(ctx, Action.ICON_CREATE, "set", found.owner_id)
    found.refuse(code=cmd.code, detail=cmd.detail, **trace(ctx))
    return found.id
