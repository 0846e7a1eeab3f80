"""The cart view on real Redis: exact state, idempotent redelivery, no regression, sliding TTL,
expiry tombstones, a lapsed hash never read half-built, the idle index the sweeper reads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from msgspec.structs import replace

from infra.bootstrap import Container
from projections.cart_view import CART_VIEW_TTL_S, RedisCartView
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


def test_the_ttl_is_eight_days_and_slides_with_each_write(container: Container) -> None:
    view = _view(container)
    envelopes = cart_envelopes()
    writes = [w for e in envelopes for w in apply(e)]
    key = view.key(envelopes[0].aggregate_id)
    view.apply(writes[:1])
    container.redis.expire(key, 60)
    assert container.redis.ttl(key) <= 60
    view.apply(writes[1:2])
    assert CART_VIEW_TTL_S - 5 <= container.redis.ttl(key) <= CART_VIEW_TTL_S


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
    assert 0 < container.redis.ttl(view.customer_carts("cust-1")) <= CART_VIEW_TTL_S
    view.apply([w for e in second for w in apply(e)])  # the newest is checked out
    current = view.current("cust-1")
    assert current is not None
    assert current["id"] == first[0].aggregate_id
    view.apply([w for e in first for w in apply(e)])
    assert view.current("cust-1") is None
    assert container.redis.exists(view.customer_carts("cust-1")) == 0


def _epoch(occurred_at: str) -> float:
    return datetime.fromisoformat(occurred_at).timestamp()


def _expired_envelope(after: Any) -> Any:
    """The ``Cart.Expired`` that would follow ``after`` in the cart's history."""
    return replace(
        after,
        type="Cart.Expired",
        data={"idle_s": 604800},
        aggregate_version=after.aggregate_version + 1,
        position=after.position + 1,
        event_id=f"{after.event_id}-expired",
        occurred_at="2030-01-01T00:00:00Z",
    )


def test_a_lapsed_hash_then_an_event_reads_as_expired_never_half_built(
    container: Container,
) -> None:
    view = _view(container)
    envelopes = cart_envelopes()
    writes = [w for e in envelopes for w in apply(e)]
    cart_id = envelopes[0].aggregate_id
    view.apply(writes[:2])
    container.redis.delete(view.key(cart_id))  # what the hash's TTL does when it lapses
    assert view.get(cart_id) is None

    assert view.apply(writes[2:3]) == 1
    expired = {
        "id": cart_id,
        "status": "expired",
        "lines": [],
        "total": {"amount_minor": 0, "currency": None},
        "version": 3,
        "position": envelopes[2].position,
    }
    assert view.get(cart_id) == expired
    assert view.apply(writes[3:4]) == 1  # expired is final: later changes add nothing
    assert view.get(cart_id) == {**expired, "version": 4, "position": envelopes[3].position}
    assert container.redis.hkeys(view.key(cart_id)) == [b"meta", b"version", b"position"]
    # Still open in the aggregate: the sweeper finds it by its last event's time.
    assert container.redis.zscore(view.idle_key(), cart_id) == _epoch(envelopes[3].occurred_at)


def test_an_expired_cart_becomes_a_tombstone_and_leaves_the_indexes(
    container: Container,
) -> None:
    view = _view(container)
    envelopes = cart_envelopes()[:3]  # opened, two lines, still open
    writes = [w for e in envelopes for w in apply(e)]
    cart_id = envelopes[0].aggregate_id
    view.apply(writes)
    assert view.current("cust-1") is not None
    assert view.idle_since(_epoch(envelopes[2].occurred_at), 10) == [cart_id]

    expiry = _expired_envelope(envelopes[2])
    assert view.apply(apply(expiry)) == 1
    assert view.get(cart_id) == {
        "id": cart_id,
        "owner_id": "cust-1",
        "currency": "USD",
        "status": "expired",
        "opened_at": envelopes[0].occurred_at,
        "expired_at": expiry.occurred_at,
        "lines": [],
        "total": {"amount_minor": 0, "currency": "USD"},
        "version": 4,
        "position": expiry.position,
    }
    assert view.current("cust-1") is None
    assert container.redis.zscore(view.idle_key(), cart_id) is None
    assert view.apply(apply(expiry)) == 0
    assert view.apply(writes) == 0


def test_the_idle_index_holds_open_carts_by_their_last_change(container: Container) -> None:
    view = _view(container)
    envelopes = cart_envelopes()
    writes = [w for e in envelopes for w in apply(e)]
    cart_id = envelopes[0].aggregate_id
    view.apply(writes[:2])
    last = _epoch(envelopes[1].occurred_at)
    assert container.redis.zscore(view.idle_key(), cart_id) == last
    assert view.idle_since(last, 10) == [cart_id]
    assert view.idle_since(last - 1, 10) == []
    view.apply(writes[2:])  # checked out: never expires
    assert view.idle_since(float("inf"), 10) == []
