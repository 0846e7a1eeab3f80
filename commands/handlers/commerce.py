"""Handlers of the commerce context (carts, orders, favourites). Prices and icon versions are
read from the catalog's write model at the moment of the command, then frozen in the events."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from commands import messages as m
from commands.errors import ProductUnavailable
from commands.handlers.common import authorize, open_library, trace, unpublished_parent
from commands.policy import Action
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.cart import Cart
from domain.choices import parse_choice
from domain.icon import Icon
from domain.icon_set import IconSet
from domain.library import Library
from domain.money import Money
from domain.order import Order, OrderLine
from domain.products import Licence, ProductKind, ProductRef
from domain.publication import PublicationStatus


def _sellable_icon(uow: UnitOfWork, icon_id: UUID) -> Icon:
    icon = uow.read(uow.apps.catalog, Icon, icon_id)
    if not icon.sellable:  # perhaps an old cached copy: refuse only on a current one
        icon = uow.read(uow.apps.catalog, Icon, icon_id, current=True)
    if not icon.sellable:
        raise ProductUnavailable(f"icon {icon_id} is not for sale ({icon.status})")
    shelf = unpublished_parent(uow, icon.set_id, icon.family_id)
    if shelf is not None:
        raise ProductUnavailable(f"icon {icon_id} is not for sale: {shelf}")
    return icon


def _bundle_price(icon_set: IconSet) -> Money | None:
    published = icon_set.status is PublicationStatus.PUBLISHED
    return icon_set.bundle_price if published else None


def _sellable_set(uow: UnitOfWork, set_id: UUID) -> tuple[IconSet, Money]:
    icon_set = uow.read(uow.apps.catalog, IconSet, set_id)
    if _bundle_price(icon_set) is None:  # perhaps an old cached copy: refuse only on a current one
        icon_set = uow.read(uow.apps.catalog, IconSet, set_id, current=True)
    price = _bundle_price(icon_set)
    if price is None:
        raise ProductUnavailable(f"set {set_id} is not for sale as a bundle")
    shelf = unpublished_parent(uow, None, icon_set.family_id)
    if shelf is not None:
        raise ProductUnavailable(f"set {set_id} is not for sale: {shelf}")
    return icon_set, price


def _cart(uow: UnitOfWork, ctx: CommandContext, cart_id: UUID, action: Action) -> Cart:
    cart = uow.get(Cart, cart_id, expected_version=ctx.expected_version)
    authorize(ctx, action, "cart", cart.owner_id)
    return cart


def open_cart(cmd: m.OpenCart, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    authorize(ctx, Action.CART_CREATE, "cart")
    return uow.add(Cart.open(owner_id=ctx.actor, currency=cmd.currency, **trace(ctx))).id


def add_to_cart(cmd: m.AddToCart, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    cart = _cart(uow, ctx, cmd.cart_id, Action.CART_MODIFY)
    product = ProductRef(parse_choice(ProductKind, cmd.product_kind), cmd.product_id)
    if product.kind is ProductKind.ICON:
        icon = _sellable_icon(uow, product.id)
        price, licence = icon.price, icon.licence
    else:
        _, price = _sellable_set(uow, product.id)
        licence = Licence.STANDARD
    cart.add_line(product=product, unit_price=price, licence=licence, **trace(ctx))
    return cart.id


def remove_from_cart(cmd: m.RemoveFromCart, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    cart = _cart(uow, ctx, cmd.cart_id, Action.CART_MODIFY)
    product = ProductRef(parse_choice(ProductKind, cmd.product_kind), cmd.product_id)
    cart.remove_line(product=product, **trace(ctx))
    return cart.id


def clear_cart(cmd: m.ClearCart, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    cart = _cart(uow, ctx, cmd.cart_id, Action.CART_MODIFY)
    cart.clear(**trace(ctx))
    return cart.id


def check_out(cmd: m.CheckOut, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    """Closes the cart and places its order; every line must still be for sale."""
    cart = _cart(uow, ctx, cmd.cart_id, Action.CART_CHECKOUT)
    lines = []
    for line in cart.lines:
        if line.product.kind is ProductKind.ICON:
            version: int | None = _sellable_icon(uow, line.product.id).svg_revision
        else:
            _sellable_set(uow, line.product.id)
            version = None
        lines.append(OrderLine.from_cart_line(line, icon_version=version))
    cart.check_out(**trace(ctx))
    order = Order.place(cart_id=cart.id, customer_id=cart.owner_id, lines=lines, **trace(ctx))
    return uow.add(order).id


def expire_cart(cmd: m.ExpireCart, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    """The cart decides, by its last event's time, whether it has been idle long enough."""
    cart = _cart(uow, ctx, cmd.cart_id, Action.CART_EXPIRE)
    cart.expire(now=dt.datetime.now(dt.UTC), idle_s=cmd.idle_s, **trace(ctx))
    return cart.id


def cancel_order(cmd: m.CancelOrder, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    order = uow.get(Order, cmd.order_id, expected_version=ctx.expected_version)
    authorize(ctx, Action.ORDER_CANCEL, "order", order.customer_id)
    order.cancel(reason=cmd.reason, **trace(ctx))
    return order.id


def _library(uow: UnitOfWork, ctx: CommandContext) -> Library:
    authorize(ctx, Action.FAVOURITES_MODIFY, "library", ctx.actor)
    return open_library(uow, ctx.actor, ctx)


def add_favourite(cmd: m.AddFavourite, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    library = _library(uow, ctx)
    uow.read(uow.apps.catalog, Icon, cmd.icon_id)
    library.add_favourite(icon_id=cmd.icon_id, **trace(ctx))
    return library.id


def remove_favourite(cmd: m.RemoveFavourite, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    library = _library(uow, ctx)
    library.remove_favourite(icon_id=cmd.icon_id, **trace(ctx))
    return library.id
