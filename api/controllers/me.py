"""The caller's own read models: orders, library, favourites (Redis, per customer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import Parameter

from api.commanding import actor_of
from api.controllers.deps import ContainerDep
from api.freshness import (
    CUSTOMERS,
    MinPosition,
    XMinPosition,
    read_fresh,
    wanted_position,
    watermark,
)
from commands.errors import AccessDenied
from commands.policy import Action, Resource, decide
from projections.customer_view import RedisCustomerView
from projections.keyspace import live_prefix

Req = Request[Any, Any, Any]
Read = Callable[[RedisCustomerView, str], dict[str, Any]]


async def customer_read(
    request: Req,
    container: Any,
    read: Read,
    min_position: int | None,
) -> Response[dict[str, Any]]:
    """Read the caller's document from the live key space; with ``min_position``, wait until
    it reflects that position (woken by the customer's change notices) or answer 503 stale."""
    actor = actor_of(request, container)
    decision = decide(actor, Action.CART_READ, Resource("customer", actor.id))
    if not decision.allowed:
        raise AccessDenied(decision.reason)
    prefix = await asyncio.to_thread(live_prefix, container.redis, "customers")
    view = RedisCustomerView(container.redis, prefix=prefix)

    async def fetch() -> dict[str, Any] | None:
        return await asyncio.to_thread(read, view, actor.id)

    document = await read_fresh(
        fetch,
        mark=watermark(container, *CUSTOMERS),
        min_position=min_position,
        timeout_s=container.settings.read_your_writes_timeout_s,
    )
    assert document is not None  # the reads below always answer a document
    return Response(document, headers={"X-Projection-Position": str(document["position"])})


MAX_PAGE = 100
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Items per page.")]
Offset = Annotated[
    int, Parameter(ge=0, le=100_000, description="Items to skip (the next page's `next_offset`).")
]
PageRead = Callable[[RedisCustomerView, str, int, int], dict[str, Any]]
"""(view, customer, offset, limit) -> the page's document, with ``total`` and ``position``."""


def paged(read: PageRead, offset: int, limit: int) -> Read:
    """A page of one of the caller's lists: ``read``'s document with the page's offset and
    limit and the offset of the next page (None on the last)."""

    def page(view: RedisCustomerView, customer_id: str) -> dict[str, Any]:
        document = read(view, customer_id, offset, limit)
        following = offset + limit
        return {
            **document,
            "offset": offset,
            "limit": limit,
            "next_offset": following if following < document["total"] else None,
        }

    return page


def _orders(view: RedisCustomerView, customer_id: str, offset: int, limit: int) -> dict[str, Any]:
    """The caller's orders, newest first; the position is the newest change among them."""
    orders = view.orders(customer_id, offset=offset, limit=limit)
    return {
        "customer_id": customer_id,
        "orders": orders,
        "position": max((order["position"] for order in orders), default=0),
        "total": view.order_count(customer_id),
    }


class MeController(Controller):
    path = "/v1/me"
    tags = ["commerce"]  # noqa: RUF012

    @get(
        "/orders",
        operation_id="myOrders",
        summary="The caller's orders, newest first, a page at a time (limit, offset; the "
        "answer's next_offset is the next page's offset, null on the last).",
    )
    async def orders(
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
        return await customer_read(request, container, paged(_orders, offset, limit), wanted)

    @get(
        "/library",
        operation_id="myLibrary",
        summary="The icons the caller is entitled to (revoked grants excluded), in grant "
        "order, a page at a time (limit, offset, as myOrders pages), with the download counts "
        "of the page's icons.",
    )
    async def library(
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
            request, container, paged(RedisCustomerView.library, offset, limit), wanted
        )
