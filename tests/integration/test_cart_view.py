"""The cart view on real Redis: exact state, idempotent redelivery, no regression, sliding TTL."""

from __future__ import annotations

import uuid

from msgspec.structs import replace

from infra.bootstrap import Container
from projections.cart_view import CART_TTL_S, RedisCartView
from projections.carts import apply
from tests.support import cart_envelopes


def _view(container: Container) -> RedisCartView:
    return RedisCartView(container.redis, prefix=f"test:{uuid.uuid4().hex[:8]}:")


def test_the_view_holds_the_carts_exact_state(container: Container) -> None:
    view = _view(container)
    envelopes = cart_envelopes()
    writes = [w for e in envelopes for w in apply(e)]
    assert view.apply(writes[:4]) == 4
    cart_id = envelopes[0].aggregate_id
    cart = view.get(cart_id)
    assert cart is not None
    second = envelopes[2].data
    assert cart == {
        "id": cart_id,
        "owner_id": "cust-1",
        "currency": "USD",
        "status": "open",
        "opened_at": envelopes[0].occurred_at,
        "lines": [
            {
                "product_kind": "icon",
                "product_id": str(second["product_id"]),
                "unit_price": {"amount_minor": 99, "currency": "USD"},
                "licence": "standard",
            }
        ],
        "total": {"amount_minor": 99, "currency": "USD"},
        "version": 4,
        "position": envelopes[3].position,
    }
    assert view.apply(writes[4:]) == 1
    closed = view.get(cart_id)
    assert closed is not None
    assert (closed["status"], closed["version"]) == ("checked_out", 5)
    assert closed["order_id"] == str(envelopes[4].data["order_id"])


def test_redelivery_and_old_events_change_nothing(container: Container) -> None:
    view = _view(container)
    envelopes = cart_envelopes()
    writes = [w for e in envelopes for w in apply(e)]
    view.apply(writes)
    once = view.get(envelopes[0].aggregate_id)
    assert view.apply(writes) == 0
    assert view.apply(list(reversed(writes))) == 0
    assert view.get(envelopes[0].aggregate_id) == once


def test_the_ttl_is_seven_days_and_slides_with_each_write(container: Container) -> None:
    view = _view(container)
    envelopes = cart_envelopes()
    writes = [w for e in envelopes for w in apply(e)]
    key = view.key(envelopes[0].aggregate_id)
    view.apply(writes[:1])
    container.redis.expire(key, 60)
    assert container.redis.ttl(key) <= 60
    view.apply(writes[1:2])
    assert CART_TTL_S - 5 <= container.redis.ttl(key) <= CART_TTL_S


def test_the_current_cart_is_the_newest_open_one_and_leaves_at_checkout(
    container: Container,
) -> None:
    view = _view(container)
    first = cart_envelopes()
    # A second story, later in the log than the whole first one.
    second = [replace(e, position=e.position + 1_000) for e in cart_envelopes()]
    assert view.current("cust-1") is None
    view.apply([w for e in first[:2] for w in apply(e)])
    current = view.current("cust-1")
    assert current is not None
    assert (current["id"], current["version"]) == (first[0].aggregate_id, 2)
    assert container.redis.zrange(view.customer_carts("cust-1"), 0, -1) == [
        first[0].aggregate_id.encode()
    ]
    view.apply([w for e in second[:1] for w in apply(e)])
    current = view.current("cust-1")
    assert current is not None
    assert (current["id"], current["version"]) == (second[0].aggregate_id, 1)
    assert 0 < container.redis.ttl(view.customer_carts("cust-1")) <= CART_TTL_S
    view.apply([w for e in second for w in apply(e)])  # the newest is checked out
    current = view.current("cust-1")
    assert current is not None
    assert current["id"] == first[0].aggregate_id
    view.apply([w for e in first for w in apply(e)])
    assert view.current("cust-1") is None
    assert container.redis.exists(view.customer_carts("cust-1")) == 0
