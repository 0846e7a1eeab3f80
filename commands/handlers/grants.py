"""What a paid order grants: each icon line's frozen version, and each set line's member icons
resolved from the catalog's write model at the moment of the grant."""

from __future__ import annotations

from uuid import UUID

from commands.unit_of_work import UnitOfWork
from domain.icon import Icon
from domain.icon_set import IconSet
from domain.order import Order
from domain.products import ProductKind


def icons_to_grant(uow: UnitOfWork, order: Order) -> dict[UUID, int]:
    """Maps each icon the order grants to the version granted.

    An icon line grants the version frozen at checkout. A set line grants the set's members
    that are sellable now (published, with current derivatives), each at its current
    ``svg_revision``; drafts, unpublished and retired members grant nothing. An icon bought
    both alone and in a bundle is granted once, at the newer of the two versions.
    """
    icons = {
        line.product.id: line.icon_version
        for line in order.lines
        if line.product.kind is ProductKind.ICON and line.icon_version is not None
    }
    for line in order.lines:
        if line.product.kind is ProductKind.SET:
            for icon_id, version in sellable_members(uow, line.product.id).items():
                icons[icon_id] = max(version, icons.get(icon_id, version))
    return icons


def sellable_members(uow: UnitOfWork, set_id: UUID) -> dict[UUID, int]:
    """The set's sellable member icons, each mapped to its current ``svg_revision``."""
    icon_set = uow.read(uow.apps.catalog, IconSet, set_id)
    members = {}
    for icon_id in icon_set.member_icon_ids:
        icon = uow.read(uow.apps.catalog, Icon, icon_id)
        if icon.sellable:
            members[icon_id] = icon.svg_revision
    return members
