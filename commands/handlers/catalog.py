"""Handlers of the catalog context."""

from __future__ import annotations

from uuid import UUID

from commands import messages as m
from commands.handlers.common import authorize, trace
from commands.policy import Action
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.choices import parse_choice
from domain.family import Family
from domain.icon import Icon
from domain.icon_set import IconSet, IconStyle
from domain.media import Derivative, MediaFormat, RenderRefusal, RenderRefusalCode, SvgOriginal
from domain.money import Money
from domain.products import Licence


def _money(value: m.Money) -> Money:
    return Money(value.amount_minor, value.currency)


def _original(value: m.SvgOriginal) -> SvgOriginal:
    return SvgOriginal(
        value.key,
        value.content_hash,
        value.size_bytes,
        value.width,
        value.height,
        value.render_cost,
    )


def _family(uow: UnitOfWork, ctx: CommandContext, family_id: UUID, action: Action) -> Family:
    family = uow.get(Family, family_id, expected_version=ctx.expected_version)
    authorize(ctx, action, "family", family.owner_id)
    return family


def _icon_set(uow: UnitOfWork, ctx: CommandContext, set_id: UUID, action: Action) -> IconSet:
    icon_set = uow.get(IconSet, set_id, expected_version=ctx.expected_version)
    authorize(ctx, action, "set", icon_set.owner_id)
    return icon_set


def _icon(uow: UnitOfWork, ctx: CommandContext, icon_id: UUID, action: Action) -> Icon:
    icon = uow.get(Icon, icon_id, expected_version=ctx.expected_version)
    authorize(ctx, action, "icon", icon.owner_id)
    return icon


def create_family(cmd: m.CreateFamily, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    authorize(ctx, Action.FAMILY_CREATE, "family")
    family = Family.create(
        owner_id=ctx.actor,
        name=cmd.name,
        description=cmd.description,
        categories=cmd.categories,
        tags=cmd.tags,
        **trace(ctx),
    )
    return uow.add(family).id


def update_family(cmd: m.UpdateFamily, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    family = _family(uow, ctx, cmd.family_id, Action.FAMILY_UPDATE)
    family.update_details(
        name=cmd.name,
        description=cmd.description,
        categories=cmd.categories,
        tags=cmd.tags,
        **trace(ctx),
    )
    return family.id


def publish_family(cmd: m.PublishFamily, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    family = _family(uow, ctx, cmd.family_id, Action.FAMILY_PUBLISH)
    family.publish(**trace(ctx))
    return family.id


def unpublish_family(cmd: m.UnpublishFamily, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    family = _family(uow, ctx, cmd.family_id, Action.FAMILY_PUBLISH)
    family.unpublish(**trace(ctx))
    return family.id


def create_icon_set(cmd: m.CreateIconSet, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    family = uow.read(uow.app, Family, cmd.family_id)
    authorize(ctx, Action.SET_CREATE, "family", family.owner_id)
    icon_set = IconSet.create(
        family_id=family.id,
        owner_id=family.owner_id,
        name=cmd.name,
        style=parse_choice(IconStyle, cmd.style),
        bundle_price=_money(cmd.bundle_price) if cmd.bundle_price else None,
        **trace(ctx),
    )
    return uow.add(icon_set).id


def update_icon_set(cmd: m.UpdateIconSet, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon_set = _icon_set(uow, ctx, cmd.set_id, Action.SET_UPDATE)
    if cmd.name is not None and cmd.name != icon_set.name:
        icon_set.rename(name=cmd.name, **trace(ctx))
    if cmd.style is not None and cmd.style != icon_set.style:
        icon_set.change_style(style=parse_choice(IconStyle, cmd.style), **trace(ctx))
    if cmd.clear_bundle_price:
        icon_set.change_bundle_price(bundle_price=None, **trace(ctx))
    elif cmd.bundle_price is not None:
        icon_set.change_bundle_price(bundle_price=_money(cmd.bundle_price), **trace(ctx))
    return icon_set.id


def publish_icon_set(cmd: m.PublishIconSet, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon_set = _icon_set(uow, ctx, cmd.set_id, Action.SET_PUBLISH)
    icon_set.publish(**trace(ctx))
    return icon_set.id


def unpublish_icon_set(cmd: m.UnpublishIconSet, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon_set = _icon_set(uow, ctx, cmd.set_id, Action.SET_PUBLISH)
    icon_set.unpublish(**trace(ctx))
    return icon_set.id


def create_icon(cmd: m.CreateIcon, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    """Creates the icon and records it as a member of its set, in one save: the set's members
    are what a bundle grants."""
    icon_set = uow.get(IconSet, cmd.set_id)
    authorize(ctx, Action.ICON_CREATE, "set", icon_set.owner_id)
    icon = Icon.create(
        set_id=icon_set.id,
        family_id=icon_set.family_id,
        owner_id=icon_set.owner_id,
        name=cmd.name,
        tags=cmd.tags,
        categories=cmd.categories,
        price=_money(cmd.price),
        licence=parse_choice(Licence, cmd.licence),
        **trace(ctx),
    )
    icon_set.add_icon(icon_id=icon.id, **trace(ctx))
    return uow.add(icon).id


def update_icon_details(cmd: m.UpdateIconDetails, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = _icon(uow, ctx, cmd.icon_id, Action.ICON_UPDATE)
    icon.update_details(name=cmd.name, tags=cmd.tags, categories=cmd.categories, **trace(ctx))
    return icon.id


def change_icon_price(cmd: m.ChangeIconPrice, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = _icon(uow, ctx, cmd.icon_id, Action.ICON_UPDATE)
    icon.change_price(price=_money(cmd.price), **trace(ctx))
    return icon.id


def change_icon_licence(cmd: m.ChangeIconLicence, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = _icon(uow, ctx, cmd.icon_id, Action.ICON_UPDATE)
    icon.change_licence(licence=parse_choice(Licence, cmd.licence), **trace(ctx))
    return icon.id


def record_original(cmd: m.RecordOriginal, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = _icon(uow, ctx, cmd.icon_id, Action.ICON_UPDATE)
    icon.record_original(original=_original(cmd.original), **trace(ctx))
    return icon.id


def revise_svg(cmd: m.ReviseSvg, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = _icon(uow, ctx, cmd.icon_id, Action.ICON_UPDATE)
    icon.revise_svg(original=_original(cmd.original), **trace(ctx))
    return icon.id


def record_derivatives(cmd: m.RecordDerivatives, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = uow.get(Icon, cmd.icon_id, expected_version=ctx.expected_version)
    authorize(ctx, Action.MEDIA_RECORD, "icon", icon.owner_id)
    icon.record_derivatives(
        source_hash=cmd.source_hash,
        renderer_version=cmd.renderer_version,
        items=[
            Derivative(parse_choice(MediaFormat, item.kind), item.size, item.key, item.size_bytes)
            for item in cmd.items
        ],
        parameters=dict(cmd.parameters),
        preview_key=cmd.preview_key,
        **trace(ctx),
    )
    return icon.id


def record_render_refusal(cmd: m.RecordRenderRefusal, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = uow.get(Icon, cmd.icon_id, expected_version=ctx.expected_version)
    authorize(ctx, Action.MEDIA_RECORD, "icon", icon.owner_id)
    refusal = RenderRefusal(
        cmd.source_hash,
        cmd.renderer_version,
        parse_choice(RenderRefusalCode, cmd.code),
        cmd.detail,
    )
    icon.record_render_refusal(refusal=refusal, **trace(ctx))
    return icon.id


def record_icon_set_preview(
    cmd: m.RecordIconSetPreview, uow: UnitOfWork, ctx: CommandContext
) -> UUID:
    icon_set = uow.get(IconSet, cmd.set_id, expected_version=ctx.expected_version)
    authorize(ctx, Action.MEDIA_RECORD, "set", icon_set.owner_id)
    icon_set.record_preview(
        key=cmd.key, member_hash=cmd.member_hash, icon_ids=list(cmd.icon_ids), **trace(ctx)
    )
    return icon_set.id


def record_family_preview(cmd: m.RecordFamilyPreview, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    family = uow.get(Family, cmd.family_id, expected_version=ctx.expected_version)
    authorize(ctx, Action.MEDIA_RECORD, "family", family.owner_id)
    family.record_preview(
        key=cmd.key, member_hash=cmd.member_hash, icon_ids=list(cmd.icon_ids), **trace(ctx)
    )
    return family.id


def publish_icon(cmd: m.PublishIcon, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = _icon(uow, ctx, cmd.icon_id, Action.ICON_PUBLISH)
    icon.publish(**trace(ctx))
    return icon.id


def unpublish_icon(cmd: m.UnpublishIcon, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = _icon(uow, ctx, cmd.icon_id, Action.ICON_PUBLISH)
    icon.unpublish(**trace(ctx))
    return icon.id


def retire_icon(cmd: m.RetireIcon, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    icon = _icon(uow, ctx, cmd.icon_id, Action.ICON_RETIRE)
    icon.retire(**trace(ctx))
    return icon.id
