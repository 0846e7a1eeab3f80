"""Read-your-writes: wait (bounded, woken by the view's change notices) until a read model has
applied the position a command returned, or answer that it is stale."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from litestar.params import HeaderParameter, QueryParameter

Document = dict[str, Any]

# A query's read-your-writes position: ``?min_position=`` or the ``X-Min-Position`` header.
MinPosition = Annotated[int | None, QueryParameter(name="min_position", ge=0)]
XMinPosition = Annotated[int | None, HeaderParameter(name="x-min-position", ge=0)]


def wanted_position(query: int | None, header: int | None) -> int | None:
    """The position to wait for: the query parameter wins over the header."""
    return query if query is not None else header


class StaleRead(Exception):
    """The read model did not reach the requested position in time."""

    code = "stale"

    def __init__(self, wanted: int, reached: int | None, waited_s: float) -> None:
        super().__init__(
            f"the read model has not reached position {wanted} yet "
            f"(it is at {reached if reached is not None else 'nothing'}); retry shortly"
        )
        self.wanted = wanted
        self.reached = reached
        self.waited_s = waited_s


def _reached(document: Document | None, min_position: int) -> bool:
    return document is not None and int(document["position"]) >= min_position


async def read_fresh(
    read: Callable[[], Awaitable[Document | None]],
    *,
    redis: Any,
    channel: str,
    min_position: int | None,
    timeout_s: float,
) -> Document | None:
    document = await read()
    if min_position is None or _reached(document, min_position):
        return document
    began = time.monotonic()
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    try:
        document = await read()  # read again once subscribed, so no change slips between
        while not _reached(document, min_position):
            remaining = timeout_s - (time.monotonic() - began)
            if remaining <= 0:
                reached = None if document is None else int(document["position"])
                raise StaleRead(min_position, reached, timeout_s)
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
            if message is not None:
                document = await read()
    finally:
        await pubsub.unsubscribe(channel)
        await pubsub.aclose()
    return document
