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
        # The page's icons' counts only: b was downloaded too, but its grant was revoked.
        "downloads": {a: 2},
        "total": 1,
        "version": 12,
        "position": library[-1].position,
    }
    assert view.favourites("cust-1") == {
        "customer_id": "cust-1",
        "icon_ids": [a, b, c],
        "total": 3,
        "version": 12,
        "position": library[-1].position,
    }
    assert view.orders("nobody") == []
    assert view.library("nobody") == {
        "customer_id": "nobody",
        "entitlements": [],
        "downloads": {},
        "total": 0,
        "version": 0,
        "position": 0,
    }
    assert view.favourites("nobody") == {
        "customer_id": "nobody",
        "icon_ids": [],
        "total": 0,
        "version": 0,
        "position": 0,
    }


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
        + ["entitlements:cust-1", "favourites:cust-1"]
    )
    grant = next(e for e in story.of(story.library_id) if e.type.endswith("EntitlementsGranted"))
    assert state["entitlements:cust-1"] == {f"{story.orders[0]}~00000": float(grant.position)}
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
        f"{prefix}entitlements:*",
        f"{prefix}favourites:*",
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
    assert (before["total"], after["total"]) == (2, 1)
    assert after["downloads"] == {a: before["downloads"][a]}
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


def test_library_and_favourites_read_a_page_at_a_time(
    container: Container, prefixes: Prefixes
) -> None:
    """A page is a range of the customer's sorted sets: grant order, then each grant's own
    icon order; revoking a grant takes exactly its icons out; every page counts the total."""
    view = _view(container, prefixes())
    library_id, first, second = (str(uuid.uuid4()) for _ in range(3))
    icons = [str(uuid.uuid4()) for _ in range(5)]
    log: list[CustomerWrite] = []

    def write(op: str, fields: dict[str, Any], customer: str = "") -> None:
        version = len(log) + 1
        log.append(
            CustomerWrite(customer, "library", library_id, version, 100 + version, op, fields)
        )
        assert view.apply([log[-1]]) == 1

    def grant(order_id: str, granted: list[str]) -> None:
        held = [{"icon_id": icon, "icon_version": 1} for icon in granted]
        write("grant", {"order_id": order_id, "icons": held, "granted_at": f"at-{order_id}"})

    write("open", {"opened_at": "2026-12-03T00:00:00Z"}, customer="cust-p")
    grant(first, [icons[2], icons[0], icons[1]])
    grant(second, [icons[4], icons[3]])
    write("download", {"icon_id": icons[0]})
    for icon in (icons[3], icons[1], icons[4], icons[0]):
        write("favourite", {"icon_id": icon})
    write("unfavourite", {"icon_id": icons[4]})

    def held(offset: int, limit: int | None) -> list[tuple[str, str]]:
        page = view.library("cust-p", offset, limit)
        assert page["total"] == 5
        return [(e["order_id"], e["icon_id"]) for e in page["entitlements"]]

    whole = [(first, icons[2]), (first, icons[0]), (first, icons[1])]
    whole += [(second, icons[4]), (second, icons[3])]
    assert held(0, None) == whole
    assert held(0, 2) + held(2, 2) + held(4, 2) == whole
    assert held(5, 2) == []
    assert view.library("cust-p", 0, 2)["downloads"] == {icons[0]: 1}
    assert view.library("cust-p", 2, 2)["downloads"] == {}
    favourites = view.favourites("cust-p", 1, 2)
    assert favourites == {
        "customer_id": "cust-p",
        "icon_ids": [icons[1], icons[0]],
        "total": 3,
        "version": len(log),
        "position": 100 + len(log),
    }
    assert view.favourites("cust-p")["icon_ids"] == [icons[3], icons[1], icons[0]]
    write("revoke", {"order_id": first})
    after = view.library("cust-p", 0, 10)
    assert [(e["order_id"], e["icon_id"]) for e in after["entitlements"]] == whole[3:]
    assert after["total"] == 2
