"""The download handler (commerce context): may this customer have this file? Record it.

A published free icon's renderings (its set and family published too) may be downloaded by any
customer; everything else (a paid
icon, and every icon's SVG original) needs an entitlement in the customer's library. A refusal
raises before anything is recorded. The customer's library is opened on their first download.
"""

from __future__ import annotations

from uuid import UUID

from commands import messages as m
from commands.handlers.common import authorize, open_library, trace, unpublished_parent
from commands.policy import Action
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.icon import Icon
from domain.library import Library
from domain.media import MediaFormat


def _library(uow: UnitOfWork, ctx: CommandContext) -> Library:
    authorize(ctx, Action.ICON_DOWNLOAD, "library", ctx.actor)
    return open_library(uow, ctx.actor, ctx)


def record_download(cmd: m.RecordDownload, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    library = _library(uow, ctx)
    icon = uow.read(uow.apps.catalog, Icon, cmd.icon_id)
    file = icon.file_for(cmd.format, cmd.size)
    free = (
        icon.is_free
        and icon.sellable
        and file.format is not MediaFormat.SVG
        and unpublished_parent(uow, icon.set_id, icon.family_id) is None
    )
    library.record_download(
        icon_id=icon.id,
        format=file.format,
        size=file.size,
        size_bytes=file.size_bytes,
        free=free,
        **trace(ctx),
    )
    return library.id
