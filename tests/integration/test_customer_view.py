"""The customer view on real Redis: exact documents, idempotent redelivery, order-independence
across aggregates, revocation, favourites and change notices."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from infra.bootstrap import Container
from projections.customer_view import RedisCustomerView, dump, key_patterns
from projections.customers import CustomerWrite, apply
from tests.unit.test_customer_projector import CustomerStory, customer_story


@functools.cache
def _story() -> CustomerStory:
    return customer_story()


Prefixes = Callable[[], str]


@pytest.fixture
def prefixes(container: Container) -> Iterator[Prefixes]:
    """Fresh key prefixes; their keys are deleted afterwards (the view sets no TTL)."""
    made: list[str] = []

    def make() -> str:
        made.append(f"test:{uuid.uuid4().hex[:8]}:")
        return made[-1]

    yield make
    for prefix in made:
        for pattern in key_patterns(prefix):
            for key in container.redis.scan_iter(match=pattern, count=1000):
                container.redis.delete(key)


def _view(container: Container, prefix: str) -> RedisCustomerView:
    return RedisCustomerView(container.redis, prefix=prefix)


def _writes(envelopes: list[Any]) -> list[CustomerWrite]:
    return [w for e in envelopes for w in apply(e)]


def _order(story: CustomerStory, n: int, status: str, icon: int, price: int) -> dict[str, Any]:
    envelopes = story.of(story.orders[n])
    placed = envelopes[0]
    return {
        "id": story.orders[n],
        "customer_id": "cust-1",
        "cart_id": str(placed.data["cart_id"]),
        "status": status,
        "lines": [
            {
                "product_kind": "icon",
                "product_id": str(story.icons[icon]),
                "unit_price": {"amount_minor": price, "currency": "USD"},
                "licence": "standard",
                "icon_version": 1,
            }
        ],
        "total": {"amount_minor": price, "currency": "USD"},
        "placed_at": placed.occurred_at,
        "version": len(envelopes),
        "position": envelopes[-1].position,
    }


def test_the_view_holds_the_exact_documents(container: Container, prefixes: Prefixes) -> None:
    story = _story()
    view = _view(container, prefixes())
    writes = _writes(story.envelopes)
    assert view.apply(writes) == len(writes) == len(story.envelopes)
    a, b, c = (str(i) for i in story.icons)
    first = _order(story, 0, "fulfilled", 0, 0)
    assert view.orders("cust-1") == [
        _order(story, 2, "cancelled", 2, 300),
        _order(story, 1, "refunded", 1, 0),
        first,
    ]
    assert view.order(story.orders[0]) == first
    assert view.order_count("cust-1") == 3
    assert view.orders("cust-1", offset=1, limit=1) == [_order(story, 1, "refunded", 1, 0)]
    assert view.orders("cust-1", offset=2, limit=5) == [first]
    assert view.orders("cust-1", offset=3, limit=5) == []
    assert view.order(str(uuid.uuid4())) is None
    library = story.of(story.library_id)
    grant = library[2]
    assert view.library("cust-1") == {
        "customer_id": "cust-1",
        "entitlements": [
            {
                "icon_id": a,
                "icon_version": 1,
                "order_id": story.orders[0],
                "granted_at": grant.occurred_at,
            }
        ],
        "downloads": dict(sorted({a: 2, b: 1}.items())),
        "version": 12,
        "position": library[-1].position,
    }
    assert view.favourites("cust-1") == {
        "customer_id": "cust-1",
        "icon_ids": [a, b, c],
        "version": 12,
        "position": library[-1].position,
    }
    assert view.orders("nobody") == []
    assert view.library("nobody") == {
        "customer_id": "nobody",
        "entitlements": [],
        "downloads": {},
        "version": 0,
        "position": 0,
    }
    assert view.favourites("nobody")["icon_ids"] == []


def test_the_records_are_permanent_and_dump_lists_every_key(
    container: Container, prefixes: Prefixes
) -> None:
    story = _story()
    prefix = prefixes()
    view = _view(container, prefix)
    view.apply(_writes(story.envelopes))
    state = dump(container.redis, prefix)
    assert sorted(state) == sorted(
        [f"order:{order_id}" for order_id in story.orders]
        + ["customer-orders:cust-1", "library:cust-1", f"library-owner:{story.library_id}"]
    )
    assert state["customer-orders:cust-1"] == {
        order_id: float(story.of(order_id)[0].position) for order_id in story.orders
    }
    assert state[f"library-owner:{story.library_id}"] == "cust-1"
    for key in state:
        assert container.redis.ttl(prefix + key) == -1
    assert key_patterns(prefix) == [
        f"{prefix}order:*",
        f"{prefix}customer-orders:*",
        f"{prefix}library:*",
        f"{prefix}library-owner:*",
    ]


def test_redelivery_changes_nothing(container: Container, prefixes: Prefixes) -> None:
    story = _story()
    prefix = prefixes()
    view = _view(container, prefix)
    writes = _writes(story.envelopes)
    view.apply(writes)
    once = dump(container.redis, prefix)
    assert view.apply(writes) == 0
    assert view.apply(list(reversed(writes))) == 0
    assert dump(container.redis, prefix) == once


def test_interleaving_aggregates_differently_gives_the_same_state(
    container: Container, prefixes: Prefixes
) -> None:
    story = _story()
    in_order, shuffled = prefixes(), prefixes()
    _view(container, in_order).apply(_writes(story.envelopes))
    # Each aggregate's own events stay in order; the aggregates are interleaved differently:
    # the library first, then the orders newest first, one event of each in turn.
    streams = [story.of(story.library_id)] + [story.of(o) for o in reversed(story.orders)]
    interleaved = []
    while any(streams):
        for stream in streams:
            if stream:
                interleaved.append(stream.pop(0))
    assert interleaved != story.envelopes
    assert sorted(e.position for e in interleaved) == [e.position for e in story.envelopes]
    view = _view(container, shuffled)
    for envelope in interleaved:  # one by one, as a consumer would
        view.apply(apply(envelope))
    assert dump(container.redis, shuffled) == dump(container.redis, in_order)
    assert dump(container.redis, in_order) != {}


def test_a_revoked_grant_leaves_the_library(container: Container, prefixes: Prefixes) -> None:
    story = _story()
    view = _view(container, prefixes())
    library = _writes(story.of(story.library_id))
    revoke = next(n for n, w in enumerate(library) if w.op == "revoke")
    view.apply(library[:revoke])
    a, b, _ = (str(i) for i in story.icons)
    before = view.library("cust-1")
    assert [(e["icon_id"], e["order_id"]) for e in before["entitlements"]] == [
        (a, story.orders[0]),
        (b, story.orders[1]),
    ]
    assert before["version"] == revoke
    assert view.apply(library[revoke : revoke + 1]) == 1
    after = view.library("cust-1")
    assert [(e["icon_id"], e["order_id"]) for e in after["entitlements"]] == [(a, story.orders[0])]
    assert after["downloads"] == before["downloads"]
    assert (after["version"], after["position"]) == (revoke + 1, library[revoke].position)


def test_favourites_keep_the_order_they_were_added(
    container: Container, prefixes: Prefixes
) -> None:
    story = _story()
    view = _view(container, prefixes())
    a, b, c = (str(i) for i in story.icons)
    seen = []
    for write in _writes(story.of(story.library_id)):
        view.apply([write])
        if write.op in {"open", "favourite", "unfavourite"}:
            seen.append(view.favourites("cust-1")["icon_ids"])
    assert seen == [[], [c], [c, a], [a], [a, b], [a, b, c]]


def test_each_change_publishes_its_position(container: Container, prefixes: Prefixes) -> None:
    story = _story()
    view = _view(container, prefixes())
    pubsub = container.redis.pubsub()
    pubsub.subscribe(view.channel("cust-1"))
    try:
        assert _next_message(pubsub)["type"] == "subscribe"
        writes = _writes(story.envelopes)
        view.apply(writes)
        view.apply(writes)  # redelivery publishes nothing
        published = [int(_next_message(pubsub)["data"]) for _ in writes]
        assert published == [w.position for w in writes]
        assert pubsub.get_message(timeout=0.2) is None
    finally:
        pubsub.close()


def test_a_library_event_before_its_opening_is_refused(
    container: Container, prefixes: Prefixes
) -> None:
    story = _story()
    view = _view(container, prefixes())
    later = _writes(story.of(story.library_id))[1:2]
    with pytest.raises(redis.ResponseError, match="no customer known"):
        view.apply(later)


def _next_message(pubsub: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            return dict(message)
    raise AssertionError("no message within 5s")
