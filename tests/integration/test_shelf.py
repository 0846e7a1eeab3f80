"""An icon is on the shelf only while it, its set and its family are all published: otherwise it
cannot be added to a cart, checked out, or downloaded for free, and each refusal appends nothing
(the real event store)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from uuid import UUID

import pytest

from commands import messages as m
from commands.errors import ProductUnavailable
from domain.errors import DomainError
from infra.bootstrap import Container
from tests.support import Catalog, appended_since, ctx, log_heads, published_catalog

pytestmark = pytest.mark.integration

PAID, FREE = 500, 0


def _unpublish_set(container: Container, catalog: Catalog) -> None:
    owner = ctx(catalog.owner, "contributor")
    container.bus.execute(m.UnpublishIconSet(set_id=catalog.set_id), owner)


def _unpublish_family(container: Container, catalog: Catalog) -> None:
    owner = ctx(catalog.owner, "contributor")
    container.bus.execute(m.UnpublishFamily(family_id=catalog.family_id), owner)


SHELVES = [
    pytest.param(_unpublish_set, "set", id="set-unpublished"),
    pytest.param(_unpublish_family, "family", id="family-unpublished"),
]


@pytest.mark.parametrize(("take_down", "parent"), SHELVES)
def test_an_icon_off_the_shelf_cannot_be_added_bought_or_downloaded_free(
    container: Container,
    take_down: Callable[[Container, Catalog], None],
    parent: str,
) -> None:
    bus = container.bus
    catalog = published_catalog(bus, f"shelf-owner-{uuid.uuid4().hex[:8]}", prices=(PAID, FREE))
    paid, free = catalog.icon_ids
    customer = ctx(f"shelf-cust-{uuid.uuid4().hex[:8]}", "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), customer).aggregate_id
    bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=paid), customer)
    bus.execute(m.RecordDownload(icon_id=free, format="png", size=64), customer)  # still on it
    take_down(container, catalog)
    heads = log_heads(container.applications)

    refusals: list[tuple[str, Callable[[], object]]] = [
        ("add icon", lambda: bus.execute(_add(cart_id, "icon", free), customer)),
        ("add set", lambda: bus.execute(_add(cart_id, "set", catalog.set_id), customer)),
        ("check out", lambda: bus.execute(m.CheckOut(cart_id=cart_id), customer)),
        (
            "free download",
            lambda: bus.execute(m.RecordDownload(icon_id=free, format="png", size=64), customer),
        ),
    ]
    outcomes = {}
    for name, call in refusals:
        with pytest.raises((ProductUnavailable, DomainError)) as refused:
            call()
        outcomes[name] = (type(refused.value).__name__, str(refused.value))

    if parent == "set":
        assert outcomes["add icon"] == (
            "ProductUnavailable",
            f"icon {free} is not for sale: its set {catalog.set_id} is not published",
        )
        assert outcomes["add set"] == (
            "ProductUnavailable",
            f"set {catalog.set_id} is not for sale as a bundle",
        )
    else:
        assert outcomes["add icon"] == (
            "ProductUnavailable",
            f"icon {free} is not for sale: its family {catalog.family_id} is not published",
        )
        assert outcomes["add set"] == (
            "ProductUnavailable",
            f"set {catalog.set_id} is not for sale: its family {catalog.family_id} is not "
            "published",
        )
    assert outcomes["check out"][0] == "ProductUnavailable"
    assert f"icon {paid} is not for sale: its {parent} " in outcomes["check out"][1]
    assert outcomes["free download"] == ("Forbidden", f"no entitlement to icon {free}")
    # nothing appended by any refusal
    assert appended_since(container.applications, heads, customer.correlation_id, {cart_id}) == []


def _add(cart_id: UUID, kind: str, product_id: UUID) -> m.AddToCart:
    return m.AddToCart(cart_id=cart_id, product_kind=kind, product_id=product_id)


def test_checkout_keeps_the_price_quoted_when_the_line_was_added(container: Container) -> None:
    """The quote rule: a price is taken when the line is added and frozen in the cart; a later
    price change (either way) does not reach the order of that cart."""
    bus = container.bus
    catalog = published_catalog(bus, f"quote-owner-{uuid.uuid4().hex[:8]}", prices=(PAID,))
    [icon_id] = catalog.icon_ids
    customer = ctx(f"quote-cust-{uuid.uuid4().hex[:8]}", "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), customer).aggregate_id
    bus.execute(_add(cart_id, "icon", icon_id), customer)
    owner = ctx(catalog.owner, "contributor")
    bus.execute(
        m.ChangeIconPrice(icon_id=icon_id, price=m.Money(amount_minor=900, currency="USD")), owner
    )

    order_id = bus.execute(m.CheckOut(cart_id=cart_id), customer).aggregate_id

    order = container.applications.commerce.repository.get(order_id)
    assert [(line.product.id, line.unit_price.amount_minor) for line in order.lines] == [
        (icon_id, PAID)
    ]
