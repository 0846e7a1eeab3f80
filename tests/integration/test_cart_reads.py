"""A cart read checks ownership before it waits or reads: another customer asking for a cart
the view does not have yet (its write is not projected: no relay runs here) is refused at once
with 403, a cart that does not exist is 404 at once, and only the owner waits (and, with nothing
projecting, gets 503 stale)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as redis_async
from litestar.testing import TestClient

from api.app import create_app
from api.freshness import CARTS, WAITERS, StaleRead, Watermark, read_fresh, watermark
from commands import messages as m
from commands.policy import Actor
from infra.bootstrap import Container
from infra.settings import Settings
from projections.cart_view import RedisCartView
from projections.carts import CartWrite
from projections.keyspace import live_prefix
from tests.faults.harness import scratch_container
from tests.support import ctx


@pytest.fixture(scope="module")
def app_container(settings: Settings) -> Iterator[Container]:
    """An event store of this module's own, which no relay or projection ever reads."""
    quick = dataclasses.replace(settings, read_your_writes_timeout_s=0.3)
    with scratch_container(quick, "iconmarket_cart_reads") as built:
        yield built


@pytest.fixture(scope="module")
def client(app_container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(app_container)) as test_client:
        yield test_client


def _auth(container: Container, actor: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(actor, frozenset(roles or ("customer",)))).access_token
    return {"Authorization": f"Bearer {token}"}


def test_ownership_is_checked_before_waiting_for_an_unprojected_cart(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    owner, other = f"reads-owner-{uuid.uuid4().hex[:8]}", f"reads-other-{uuid.uuid4().hex[:8]}"
    opened = app_container.bus.execute(m.OpenCart(currency="USD"), ctx(owner, "customer"))
    path = f"/v1/carts/{opened.aggregate_id}?min_position={opened.position}"

    stranger = client.get(path, headers=_auth(app_container, other))
    missing = client.get(
        f"/v1/carts/{uuid.uuid4()}?min_position={opened.position}",
        headers=_auth(app_container, other),
    )
    mine = client.get(path, headers=_auth(app_container, owner))

    assert (stranger.status_code, stranger.json()["code"]) == (403, "forbidden")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (mine.status_code, mine.json()["code"]) == (503, "stale")


def test_waits_beyond_the_per_worker_bound_are_answered_stale_at_once(
    app_container: Container,
) -> None:
    """Each waiting read holds a Redis connection, so a worker lets only
    ``read_your_writes_max_waiters`` wait: with a bound of 3, 3 of 5 concurrent reads wait the
    whole timeout and 2 are answered stale without waiting."""
    owner = f"reads-bound-{uuid.uuid4().hex[:8]}"
    opened = app_container.bus.execute(m.OpenCart(currency="USD"), ctx(owner, "customer"))
    settings = app_container.settings

    async def read() -> dict[str, Any] | None:
        return None

    async def attempt(mark: Watermark) -> float:
        try:
            await read_fresh(read, mark=mark, min_position=opened.position, timeout_s=0.5)
        except StaleRead as stale:
            return stale.waited_s
        raise AssertionError("a position nothing projected was answered")

    async def all_at_once() -> list[float]:
        client = redis_async.Redis(host=settings.redis_host, port=settings.redis_port)
        mark = dataclasses.replace(watermark(app_container, *CARTS), redis=client, max_waiters=3)
        try:
            return await asyncio.gather(*(attempt(mark) for _ in range(5)))
        finally:
            await client.aclose()

    waited = asyncio.run(all_at_once())

    assert sorted(waited) == [0.0, 0.0, 0.5, 0.5, 0.5]
    assert WAITERS.count == 0  # every waiter left


def test_a_cart_the_view_keeps_only_as_a_tombstone_is_still_its_owners(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    """A cart hash that lapsed before a later event is rebuilt as a bare tombstone (status
    expired, no owner): the owner is then read from the event store, so only the owner (and
    administrators) learn that it expired; anyone else is refused as for any other cart."""
    owner = f"reads-tomb-{uuid.uuid4().hex[:8]}"
    opened = app_container.bus.execute(m.OpenCart(currency="USD"), ctx(owner, "customer"))
    redis = app_container.redis
    view = RedisCartView(redis, prefix=live_prefix(redis, "carts"))
    cart_id = str(opened.aggregate_id)
    view.apply([CartWrite(cart_id, 2, opened.position + 1, "clear", {}, "2026-01-01T00:00:00Z")])
    try:
        assert view.get(cart_id) is not None
        assert "owner_id" not in view.get(cart_id)  # type: ignore[operator]
        answers = {
            who: client.get(f"/v1/carts/{cart_id}", headers=_auth(app_container, who, *roles))
            for who, roles in {
                owner: ("customer",),
                "reads-stranger": ("customer",),
                "reads-contributor": ("contributor",),
                "reads-blocked": ("denyall", "customer"),
                "reads-admin": ("admin",),
            }.items()
        }
    finally:
        redis.delete(view.key(cart_id))
        redis.zrem(view.idle_key(), cart_id)

    assert {who: (r.status_code, r.json()["code"]) for who, r in answers.items()} == {
        owner: (410, "cart_expired"),
        "reads-stranger": (403, "forbidden"),
        "reads-contributor": (403, "forbidden"),
        "reads-blocked": (403, "forbidden"),
        "reads-admin": (410, "cart_expired"),
    }
