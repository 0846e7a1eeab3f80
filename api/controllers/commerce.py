"""Carts, checkout, orders and favourites."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import FromPath, JSONBody

from api.commanding import CommandAccepted, actor_of, dispatch
from api.contract import facts
from api.controllers.deps import ContainerDep
from api.controllers.me import Limit, Offset, customer_read, paged
from api.freshness import (
    CARTS,
    MinPosition,
    XMinPosition,
    read_fresh,
    wanted_position,
    watermark,
)
from api.schemas import CancelBody, CartBody, CartLineBody
from commands import messages as m
from commands.errors import AccessDenied, AggregateNotFound
from commands.policy import Action, Resource, decide
from commands.unit_of_work import UnitOfWork
from domain.cart import Cart
from domain.errors import ErrorCode, Gone
from infra.bootstrap import Container
from projections.cart_view import EXPIRED, CartReader
from projections.customer_view import RedisCustomerView

Req = Request[Any, Any, Any]
Accepted = Response[CommandAccepted]
CART = facts(problems=(410,))
"""A cart's routes: an expired cart is 410 cart_expired."""


def _owner(container: Container, cart_id: UUID) -> str:
    """The cart's owner from the event store (AggregateNotFound when there is no such cart)."""
    return UnitOfWork.read(container.applications.commerce, Cart, cart_id).owner_id


class CartController(Controller):
    path = "/v1/carts"
    tags = ["commerce"]  # noqa: RUF012

    @get(
        "/{cart_id:uuid}",
        operation_id="getCart",
        opt=CART,
        summary="A cart from the read model; pass min_position (or X-Min-Position) to read your "
        "own write: the answer waits until it is applied, or is 503 stale.",
    )
    async def get_cart(
        self,
        request: Req,
        container: ContainerDep,
        cart_id: FromPath[UUID],
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[dict[str, Any]]:
        actor = actor_of(request, container)
        reader = CartReader(container.redis_async)

        async def read() -> dict[str, Any] | None:
            return (await reader.get(str(cart_id)))[1]

        # Ownership first, before any wait: from the view when it has the cart's owner, else
        # from the event store (a cart not projected yet, or kept only as a bare tombstone; no
        # cart: 404 at once). Another customer thus learns nothing, not even from how long the
        # answer takes.
        now = await read()
        owner = now.get("owner_id") if now else None
        if owner is None:
            owner = await asyncio.to_thread(_owner, container, cart_id)
        decision = decide(actor, Action.CART_READ, Resource("cart", owner))
        if not decision.allowed:
            raise AccessDenied(decision.reason)
        cart = await read_fresh(
            read,
            mark=watermark(container, *CARTS),
            min_position=wanted_position(min_position, x_min_position),
            timeout_s=container.settings.read_your_writes_timeout_s,
        )
        if cart is None:
            raise AggregateNotFound(f"cart {cart_id} does not exist")
        expired = cart["status"] == EXPIRED
        if expired:
            raise Gone(ErrorCode.CART_EXPIRED, f"cart {cart_id} expired after being left idle")
        return Response(cart, headers={"X-Projection-Position": str(cart["position"])})

    @get(
        "/me",
        operation_id="getMyCart",
        opt=facts(problems=(404,)),  # no open cart
        summary="The caller's current cart (the most recently opened one still open); pass "
        "min_position (or X-Min-Position) to read your own write.",
    )
    async def get_my_cart(
        self,
        request: Req,
        container: ContainerDep,
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[dict[str, Any]]:
        actor = actor_of(request, container)
        decision = decide(actor, Action.CART_READ, Resource("cart", actor.id))
        if not decision.allowed:
            raise AccessDenied(decision.reason)
        reader = CartReader(container.redis_async)

        async def read() -> dict[str, Any] | None:
            return (await reader.current(actor.id))[1]

        cart = await read_fresh(
            read,
            mark=watermark(container, *CARTS),
            min_position=wanted_position(min_position, x_min_position),
            timeout_s=container.settings.read_your_writes_timeout_s,
        )
        if cart is None:
            raise AggregateNotFound("you have no open cart")
        return Response(cart, headers={"X-Projection-Position": str(cart["position"])})

    @post(
        "/",
        operation_id="openCart",
        opt=facts(creates="cart"),
        status_code=201,
        summary="Open a cart in a currency.",
    )
    async def open(
        self, request: Req, container: ContainerDep, data: JSONBody[CartBody]
    ) -> Accepted:
        return await dispatch(
            request, container, m.OpenCart(currency=data.currency), status_code=201
        )

    @post(
        "/{cart_id:uuid}/lines",
        operation_id="addToCart",
        opt=CART,
        status_code=202,
        summary="Add an icon or a set; its current price is taken now.",
    )
    async def add(
        self,
        request: Req,
        container: ContainerDep,
        cart_id: FromPath[UUID],
        data: JSONBody[CartLineBody],
    ) -> Accepted:
        command = m.AddToCart(
            cart_id=cart_id, product_kind=data.product_kind, product_id=data.product_id
        )
        return await dispatch(request, container, command)

    @delete(
        "/{cart_id:uuid}/lines/{product_kind:str}/{product_id:uuid}",
        operation_id="removeFromCart",
        opt=CART,
        status_code=202,
        summary="Remove one line.",
    )
    async def remove(
        self,
        request: Req,
        container: ContainerDep,
        cart_id: FromPath[UUID],
        product_kind: FromPath[str],
        product_id: FromPath[UUID],
    ) -> Accepted:
        command = m.RemoveFromCart(
            cart_id=cart_id, product_kind=product_kind, product_id=product_id
        )
        return await dispatch(request, container, command)

    @delete(
        "/{cart_id:uuid}/lines",
        operation_id="clearCart",
        opt=CART,
        status_code=202,
        summary="Remove every line.",
    )
    async def clear(
        self, request: Req, container: ContainerDep, cart_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.ClearCart(cart_id=cart_id))

    @post(
        "/{cart_id:uuid}/checkout",
        operation_id="checkOut",
        opt=facts(problems=(410,), creates="order"),
        status_code=201,
        summary="Close the cart and place its order (the result's id is the order's).",
    )
    async def checkout(
        self, request: Req, container: ContainerDep, cart_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.CheckOut(cart_id=cart_id), status_code=201)


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["commerce"]  # noqa: RUF012

    @post(
        "/{order_id:uuid}/cancel",
        operation_id="cancelOrder",
        status_code=202,
        summary="Cancel an order that is not paid.",
    )
    async def cancel(
        self,
        request: Req,
        container: ContainerDep,
        order_id: FromPath[UUID],
        data: JSONBody[CancelBody | None] = None,
    ) -> Accepted:
        reason = data.reason if data else "cancelled by the customer"
        return await dispatch(request, container, m.CancelOrder(order_id=order_id, reason=reason))


class FavouriteController(Controller):
    path = "/v1/me/favourites"
    tags = ["commerce"]  # noqa: RUF012

    @get(
        "/",
        operation_id="myFavourites",
        summary="The caller's favourite icons in the order they were added, a page at a time "
        "(limit, offset, as myOrders pages).",
    )
    async def list(
        self,
        request: Req,
        container: ContainerDep,
        *,
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Response[dict[str, Any]]:
        wanted = wanted_position(min_position, x_min_position)
        return await customer_read(
            request, container, paged(RedisCustomerView.favourites, offset, limit), wanted
        )

    @put(
        "/{icon_id:uuid}",
        operation_id="addFavourite",
        status_code=202,
        summary="Mark an icon as a favourite.",
    )
    async def add(self, request: Req, container: ContainerDep, icon_id: FromPath[UUID]) -> Accepted:
        return await dispatch(request, container, m.AddFavourite(icon_id=icon_id))

    @delete(
        "/{icon_id:uuid}",
        operation_id="removeFavourite",
        status_code=202,
        summary="Unmark a favourite.",
    )
    async def remove(
        self, request: Req, container: ContainerDep, icon_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.RemoveFavourite(icon_id=icon_id))
