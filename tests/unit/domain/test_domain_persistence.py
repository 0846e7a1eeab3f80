"""Events and state survive eventsourcing's JSON transcoder (in-memory POPO store)."""

from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application

from domain.account import Account, Role
from domain.cart import Cart
from domain.family import Family
from domain.icon import Icon
from domain.icon_set import IconSet, IconStyle
from domain.library import Library
from domain.media import Derivative, MediaFormat, SvgOriginal
from domain.money import Money
from domain.order import Order, OrderLine
from domain.products import Licence, ProductKind, ProductRef
from domain.traced_aggregate import Trace, TracedAggregate
from domain.transaction import Transaction

FAMILY_ID = UUID("00000000-0000-4000-8000-00000000000f")
SET_ID = UUID("00000000-0000-4000-8000-000000000005")
ICON = ProductRef(ProductKind.ICON, UUID("00000000-0000-4000-8000-000000000001"))
SET = ProductRef(ProductKind.SET, SET_ID)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def _family(trace: Trace) -> Family:
    family = Family.create(owner_id="c-1", name="Weather", tags=["sun"], **trace)
    family.update_details(name="Sky", description="d", categories=["nature"], tags=[], **trace)
    family.publish(**trace)
    return family


def _icon_set(trace: Trace) -> IconSet:
    icon_set = IconSet.create(
        family_id=FAMILY_ID,
        owner_id="c-1",
        name="Sky line",
        style=IconStyle.LINE,
        bundle_price=Money(900, "EUR"),
        **trace,
    )
    icon_set.change_bundle_price(bundle_price=None, **trace)
    icon_set.publish(**trace)
    return icon_set


def _icon(trace: Trace) -> Icon:
    icon = Icon.create(
        set_id=SET_ID,
        family_id=FAMILY_ID,
        owner_id="c-1",
        name="Sun",
        tags=["sun"],
        price=Money(300, "EUR"),
        **trace,
    )
    icon.record_original(original=SvgOriginal("o/a.svg", "aa", 10, 24, 24), **trace)
    icon.revise_svg(original=SvgOriginal("o/b.svg", "bb", 12, 24, 24), **trace)
    icon.record_derivatives(
        source_hash="bb",
        renderer_version="r1",
        items=[Derivative(MediaFormat.PNG, 64, "d/b/64.png", 99)],
        **trace,
    )
    icon.publish(**trace)
    icon.change_licence(licence=Licence.EXTENDED, **trace)
    return icon


def _cart(trace: Trace) -> Cart:
    cart = Cart.open(owner_id="u-1", currency="EUR", **trace)
    cart.add_line(product=ICON, unit_price=Money(300, "EUR"), licence=Licence.STANDARD, **trace)
    cart.add_line(product=SET, unit_price=Money(900, "EUR"), licence=Licence.EXTENDED, **trace)
    cart.remove_line(product=SET, **trace)
    cart.check_out(**trace)
    return cart


def _order(trace: Trace) -> Order:
    order = Order.place(
        cart_id=UUID("00000000-0000-4000-8000-0000000000cc"),
        customer_id="u-1",
        lines=[
            OrderLine(ICON, Money(300, "EUR"), Licence.STANDARD, 2),
            OrderLine(SET, Money(900, "EUR"), Licence.EXTENDED, None),
        ],
        **trace,
    )
    first = order.start_payment(**trace)
    order.mark_failed(transaction_id=first, reason="declined", **trace)
    second = order.start_payment(**trace)
    order.mark_paid(transaction_id=second, **trace)
    return order


def _transaction(trace: Trace) -> Transaction:
    transaction = Transaction.start(
        order_id=UUID("00000000-0000-4000-8000-0000000000aa"),
        attempt=1,
        amount=Money(1200, "EUR"),
        provider="stripe",
        provider_reference="pi_1",
        **trace,
    )
    transaction.succeed(provider_reference="pi_2", captured=Money(1100, "EUR"), **trace)
    return transaction


def _library(trace: Trace) -> Library:
    library = Library.open(customer_id="u-1", **trace)
    order_id = UUID("00000000-0000-4000-8000-0000000000a1")
    library.grant(order_id=order_id, icons={ICON.id: 2}, **trace)
    library.record_download(
        icon_id=ICON.id, format=MediaFormat.SVG, size=None, size_bytes=9, **trace
    )
    library.add_favourite(icon_id=ICON.id, **trace)
    library.revoke(order_id=order_id, reason="refunded", **trace)
    return library


def _account(trace: Trace) -> Account:
    account = Account.register(email="Ada@Example.com", password_hash=HASH, **trace)
    account.change_roles(new_roles={Role.CONTRIBUTOR}, by_roles={Role.ADMIN}, **trace)
    return account


BUILDERS: dict[str, Callable[[Trace], TracedAggregate]] = {
    "family": _family,
    "icon_set": _icon_set,
    "icon": _icon,
    "cart": _cart,
    "order": _order,
    "transaction": _transaction,
    "library": _library,
    "account": _account,
}


@pytest.fixture
def app() -> Application[UUID]:
    return Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_an_aggregate_is_rebuilt_equal_from_its_stored_events(
    app: Application[UUID], trace: Trace, build: Callable[[Trace], TracedAggregate]
) -> None:
    aggregate = build(trace)
    app.save(aggregate)

    rebuilt: TracedAggregate = app.repository.get(aggregate.id)

    assert rebuilt == aggregate
    assert rebuilt.version == aggregate.version


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_stored_events_keep_their_class_actor_and_correlation_id(
    app: Application[UUID], trace: Trace, build: Callable[[Trace], TracedAggregate]
) -> None:
    aggregate = build(trace)
    pending: list[Any] = list(aggregate.pending_events)
    app.save(aggregate)

    stored: list[Any] = list(app.events.get(aggregate.id))

    assert [type(event) for event in stored] == [type(event) for event in pending]
    assert [vars(event) for event in stored] == [vars(event) for event in pending]
    assert {(event.actor, event.correlation_id) for event in stored} == {
        (trace["actor"], trace["correlation_id"])
    }


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_aggregate_state_survives_a_snapshot(
    trace: Trace, build: Callable[[Trace], TracedAggregate]
) -> None:
    app: Application[UUID] = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo", "IS_SNAPSHOTTING_ENABLED": "y"}
    )
    aggregate = build(trace)
    app.save(aggregate)
    app.take_snapshot(aggregate.id)

    assert app.snapshots is not None
    snapshots: list[Any] = list(app.snapshots.get(aggregate.id))
    restored = snapshots[0].mutate(None)

    assert len(snapshots) == 1

    assert restored == aggregate


def test_an_auditor_can_read_an_order_at_any_version(app: Application[UUID], trace: Trace) -> None:
    order = _order(trace)
    app.save(order)

    versions: list[Order] = [app.repository.get(order.id, version=v) for v in range(1, 6)]
    statuses = [order_at.status.value for order_at in versions]

    assert statuses == ["pending", "payment_processing", "failed", "payment_processing", "paid"]


def test_a_reloaded_aggregate_accepts_further_commands(
    app: Application[UUID], trace: Trace
) -> None:
    cart = Cart.open(owner_id="u-1", currency="EUR", **trace)
    app.save(cart)

    reloaded: Cart = app.repository.get(cart.id)
    reloaded.add_line(product=ICON, unit_price=Money(300, "EUR"), licence=Licence.STANDARD, **trace)
    app.save(reloaded)

    latest: Cart = app.repository.get(cart.id)
    assert (latest.version, latest.total, latest.contains(ICON)) == (2, Money(300, "EUR"), True)
