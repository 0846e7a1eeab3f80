"""The customer projector is pure: real order and library envelopes in, guarded writes out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands import messages as m
from commands.bus import CommandBus
from domain.ids import library_id_for
from domain.library import Library
from domain.media import MediaFormat
from domain.order import Order
from projections.customers import CustomerWrite, apply
from tests.support import ctx, published_catalog

SERVICE = {"actor": "service:payments", "correlation_id": "corr-payments"}


@dataclass(frozen=True)
class CustomerStory:
    """The commerce envelopes of one customer's orders and library, in log order."""

    customer: str
    icons: tuple[UUID, ...]  # a and b are free, c costs 300
    orders: tuple[str, ...]  # first (a, paid, fulfilled), second (b, refunded), third (c)
    library_id: str
    envelopes: list[Any]

    def of(self, aggregate_id: str) -> list[Any]:
        return [e for e in self.envelopes if e.aggregate_id == aggregate_id]


def _buy(bus: CommandBus, who: Any, icon_id: UUID) -> UUID:
    cart_id = bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who)
    order_id: UUID = bus.execute(m.CheckOut(cart_id=cart_id), who).aggregate_id
    return order_id


def customer_story(customer: str = "cust-1") -> CustomerStory:
    """A real story on the in-memory store: three orders (two free ones paid and granted, the
    second refunded and revoked, the third cancelled), downloads and favourites.

    Commands run through the bus; payment, grants, refunds and downloads (which no command
    issues yet) are called on the aggregates and saved by the commerce application.
    """
    from commands.applications import build_applications
    from commands.routes import ROUTES
    from stream.envelope import to_envelope

    apps = build_applications(None)
    bus = CommandBus(apps, ROUTES)
    commerce = apps.commerce
    a, b, c = published_catalog(bus, "owner-1", prices=(0, 0, 300)).icon_ids
    who = ctx(customer, "customer")
    first = _buy(bus, who, a)
    second = _buy(bus, who, b)
    for order_id in (first, second):
        order = commerce.repository.get(order_id)
        assert isinstance(order, Order)
        order.mark_paid(transaction_id=None, **SERVICE)
        commerce.save(order)
    bus.execute(m.AddFavourite(icon_id=c), who)  # opens the library
    library = commerce.repository.get(library_id_for(customer))
    assert isinstance(library, Library)
    library.grant(order_id=first, icons={a: 1}, **SERVICE)
    library.grant(order_id=second, icons={b: 1}, **SERVICE)
    library.record_download(icon_id=a, format=MediaFormat.PNG, size=64, size_bytes=900, **SERVICE)
    library.record_download(icon_id=b, format=MediaFormat.SVG, size=None, size_bytes=321, **SERVICE)
    library.record_download(icon_id=a, format=MediaFormat.SVG, size=None, size_bytes=321, **SERVICE)
    commerce.save(library)
    order = commerce.repository.get(first)
    assert isinstance(order, Order)
    order.fulfil(**SERVICE)
    commerce.save(order)
    order = commerce.repository.get(second)
    assert isinstance(order, Order)
    order.refund(reason="refunded", **SERVICE)
    commerce.save(order)
    library = commerce.repository.get(library_id_for(customer))
    assert isinstance(library, Library)
    library.revoke(order_id=second, reason="refunded", **SERVICE)
    commerce.save(library)
    bus.execute(m.AddFavourite(icon_id=a), who)
    bus.execute(m.RemoveFavourite(icon_id=c), who)
    bus.execute(m.AddFavourite(icon_id=b), who)
    bus.execute(m.AddFavourite(icon_id=c), who)
    third = _buy(bus, who, c)
    bus.execute(m.CancelOrder(order_id=third), who)
    envelopes = [
        to_envelope("commerce", n.id, commerce.mapper.to_domain_event(n))
        for n in commerce.recorder.select_notifications(start=None, limit=10_000)
    ]
    apps.close()
    return CustomerStory(
        customer=customer,
        icons=(a, b, c),
        orders=(str(first), str(second), str(third)),
        library_id=str(library_id_for(customer)),
        envelopes=[e for e in envelopes if e.aggregate_type in {"Order", "Library"}],
    )


def _writes(envelopes: list[Any]) -> list[CustomerWrite]:
    return [w for e in envelopes for w in apply(e)]


def test_an_order_story_becomes_versioned_writes() -> None:
    story = customer_story()
    a, _, _ = (str(i) for i in story.icons)
    first = story.orders[0]
    envelopes = story.of(first)
    placed = envelopes[0]
    assert _writes(envelopes) == [
        CustomerWrite(
            customer_id="cust-1",
            doc="order",
            doc_id=first,
            version=1,
            position=placed.position,
            op="place",
            fields={
                "cart_id": str(placed.data["cart_id"]),
                "status": "pending",
                "lines": [
                    {
                        "product_kind": "icon",
                        "product_id": a,
                        "unit_price": {"amount_minor": 0, "currency": "USD"},
                        "licence": "standard",
                        "icon_version": 1,
                    }
                ],
                "total": {"amount_minor": 0, "currency": "USD"},
                "placed_at": placed.occurred_at,
            },
        ),
        CustomerWrite("", "order", first, 2, envelopes[1].position, "status", {"status": "paid"}),
        CustomerWrite(
            "", "order", first, 3, envelopes[2].position, "status", {"status": "fulfilled"}
        ),
    ]
    statuses = [w.fields["status"] for o in story.orders for w in _writes(story.of(o))]
    assert statuses == [
        *("pending", "paid", "fulfilled"),
        *("pending", "paid", "refunded"),
        *("pending", "cancelled"),
    ]


def test_a_library_story_becomes_versioned_writes() -> None:
    story = customer_story()
    a, b, c = (str(i) for i in story.icons)
    first, second, _ = story.orders
    envelopes = story.of(story.library_id)
    writes = _writes(envelopes)
    assert [w.position for w in writes] == [e.position for e in envelopes]
    assert [w.version for w in writes] == list(range(1, 13))
    assert {w.doc_id for w in writes} == {story.library_id}
    assert {w.doc for w in writes} == {"library"}
    assert [(w.customer_id, w.op, w.fields) for w in writes] == [
        ("cust-1", "open", {"opened_at": envelopes[0].occurred_at}),
        ("", "favourite", {"icon_id": c}),
        (
            "",
            "grant",
            {
                "order_id": first,
                "icons": [{"icon_id": a, "icon_version": 1}],
                "granted_at": envelopes[2].occurred_at,
            },
        ),
        (
            "",
            "grant",
            {
                "order_id": second,
                "icons": [{"icon_id": b, "icon_version": 1}],
                "granted_at": envelopes[3].occurred_at,
            },
        ),
        ("", "download", {"icon_id": a}),
        ("", "download", {"icon_id": b}),
        ("", "download", {"icon_id": a}),
        ("", "revoke", {"order_id": second}),
        ("", "favourite", {"icon_id": a}),
        ("", "unfavourite", {"icon_id": c}),
        ("", "favourite", {"icon_id": b}),
        ("", "favourite", {"icon_id": c}),
    ]


def test_json_decoded_envelopes_give_the_same_writes() -> None:
    from stream.envelope import decode, encode

    story = customer_story()
    decoded = [decode(encode(e)) for e in story.envelopes]
    assert _writes(decoded) == _writes(story.envelopes)


def test_other_events_write_nothing() -> None:
    envelope = customer_story().envelopes[0]
    fields = {f: getattr(envelope, f) for f in envelope.__struct_fields__}
    for kind in ("Cart.Opened", "Icon.Published", "Transaction.Started"):
        assert apply(type(envelope)(**{**fields, "type": kind})) == []
