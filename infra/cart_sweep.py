"""The cart expiry sweeper: records ``Cart.Expired`` for open carts idle past the cart TTL.

Candidates come from the live cart view's ``carts-idle`` index (open carts by their last event's
time); each is expired by the ``ExpireCart`` command, as the "service" role, and the aggregate
decides by its own last event's time. A candidate it refuses (the view is behind: the cart
changed, was checked out or already expired) is left for the next pass, when the view has caught
up. Running two sweepers at once is harmless: the second ``ExpireCart`` of a cart is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands import messages as m
from commands.bus import CommandBus
from commands.errors import AggregateNotFound, VersionConflict
from commands.results import CommandContext
from domain.errors import DomainError
from projections.cart_view import RedisCartView
from projections.keyspace import live_prefix

SWEEP_ACTOR = "service:carts"
PAGE = 500


@dataclass
class SweepReport:
    """One pass: carts expired, and candidates the aggregate refused (left for the next pass)."""

    expired: int = 0
    refused: int = 0


def live_view(redis: Any) -> RedisCartView:
    """The cart view readers use now (a rebuild switches it)."""
    return RedisCartView(redis, prefix=live_prefix(redis, "carts"))


def sweep(
    bus: CommandBus,
    view: RedisCartView,
    *,
    ttl_s: int,
    now: float | None = None,
    advance: Callable[[], None] = lambda: None,
) -> SweepReport:
    """Expires every open cart of ``view`` idle for ``ttl_s`` seconds at ``now`` (epoch s)."""
    cutoff = (time.time() if now is None else now) - ttl_s
    report = SweepReport()
    offset = 0
    while page := view.idle_since(cutoff, PAGE, offset=offset):
        for cart_id in page:
            try:
                bus.execute(m.ExpireCart(cart_id=UUID(cart_id), idle_s=ttl_s), _context(cart_id))
            except (DomainError, AggregateNotFound, VersionConflict):
                report.refused += 1
            else:
                report.expired += 1
            advance()
        # Expired carts leave the index once projected, which may be before or after this read.
        offset += len(page)
    return report


def _context(cart_id: str) -> CommandContext:
    return CommandContext(
        actor=SWEEP_ACTOR,
        roles=frozenset({"service"}),
        correlation_id=f"cart-expiry:{cart_id}",
    )
