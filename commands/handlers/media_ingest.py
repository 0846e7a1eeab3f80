"""Handlers of media ingestion (catalog context): the report of a zip batch import."""

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


def report_import(cmd: m.ReportImport, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon_set = uow.read(uow.app, IconSet, cmd.set_id)
    authorize(ctx, Action.ICON_CREATE, "set", icon_set.owner_id)
    if uow.exists(import_id_for(cmd.set_id, cmd.zip_hash, cmd.request_key)):
        raise AlreadyExists("this zip was already imported into the set with this key")
    report = IconImport.report(
        set_id=icon_set.id,
        owner_id=icon_set.owner_id,
        zip_hash=cmd.zip_hash,
        request_key=cmd.request_key,
        created=[{"file": item.file, "icon_id": str(item.icon_id)} for item in cmd.created],
        rejected=[
            {"file": item.file, "code": item.code, "detail": item.detail} for item in cmd.rejected
        ],
        **trace(ctx),
    )
    return uow.add(report).id
