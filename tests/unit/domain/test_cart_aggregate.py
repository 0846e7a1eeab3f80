from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import pytest

from domain.cart import Cart, CartLine
from domain.errors import DomainError, Gone, InvalidValue, InvariantViolated, NotFound
from domain.ids import order_id_for_cart
from domain.money import Money
from domain.products import Licence, ProductKind, ProductRef
from domain.traced_aggregate import Trace, TracedAggregate

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]

ICON = ProductRef(ProductKind.ICON, UUID("00000000-0000-4000-8000-000000000001"))
SET = ProductRef(ProductKind.SET, UUID("00000000-0000-4000-8000-000000000002"))


def _cart(trace: Trace) -> Cart:
    return Cart.open(owner_id="customer-1", currency="EUR", **trace)


def _cart_with_icon(trace: Trace) -> Cart:
    cart = _cart(trace)
    cart.add_line(product=ICON, unit_price=Money(300, "EUR"), licence=Licence.STANDARD, **trace)
    return cart


def test_opening_a_cart_records_opened(trace: Trace, collect: Collect) -> None:
    cart = _cart(trace)

    assert collect(cart) == ["Cart.Opened"]
    assert (cart.owner_id, cart.currency, cart.lines, cart.total) == (
        "customer-1",
        "EUR",
        (),
        Money(0, "EUR"),
    )
    assert (cart.is_closed, cart.order_id, cart.version) == (False, None, 1)


def test_opening_a_cart_needs_a_currency_code(trace: Trace) -> None:
    with pytest.raises(InvalidValue) as raised:
        Cart.open(owner_id="customer-1", currency="euro", **trace)

    assert raised.value.code == "invalid_currency"


def test_adding_lines_takes_the_quoted_price(trace: Trace, collect: Collect) -> None:
    cart = _cart(trace)
    collect(cart)

    cart.add_line(product=ICON, unit_price=Money(300, "EUR"), licence=Licence.STANDARD, **trace)
    cart.add_line(product=SET, unit_price=Money(4900, "EUR"), licence=Licence.EXTENDED, **trace)

    assert collect(cart) == ["Cart.LineAdded", "Cart.LineAdded"]
    assert cart.lines == (
        CartLine(ICON, Money(300, "EUR"), Licence.STANDARD),
        CartLine(SET, Money(4900, "EUR"), Licence.EXTENDED),
    )
    assert (cart.total, cart.version) == (Money(5200, "EUR"), 3)
    assert cart.contains(ICON)
    assert cart.contains(SET)


def test_line_added_carries_the_product_price_and_licence(trace: Trace) -> None:
    cart = _cart(trace)
    cart.collect_events()

    cart.add_line(product=SET, unit_price=Money(4900, "EUR"), licence=Licence.EXTENDED, **trace)

    (added,) = cart.collect_events()
    assert isinstance(added, Cart.LineAdded)
    assert vars(added) | {"timestamp": None} == {
        "originator_id": cart.id,
        "originator_version": 2,
        "timestamp": None,
        "actor": trace["actor"],
        "correlation_id": trace["correlation_id"],
        "product_kind": "set",
        "product_id": SET.id,
        "unit_price": {"amount_minor": 4900, "currency": "EUR"},
        "licence": "extended",
    }


def test_a_product_can_be_in_the_cart_once(trace: Trace, rejects: Rejects) -> None:
    cart = _cart_with_icon(trace)

    rejects(
        cart,
        InvariantViolated,
        "already_in_cart",
        lambda: cart.add_line(
            product=ICON, unit_price=Money(900, "EUR"), licence=Licence.EXTENDED, **trace
        ),
    )
    assert cart.total == Money(300, "EUR")


def test_the_same_id_as_icon_and_as_set_are_different_products(
    trace: Trace, collect: Collect
) -> None:
    cart = _cart_with_icon(trace)
    collect(cart)

    cart.add_line(
        product=ProductRef(ProductKind.SET, ICON.id),
        unit_price=Money(1000, "EUR"),
        licence=Licence.STANDARD,
        **trace,
    )

    assert collect(cart) == ["Cart.LineAdded"]
    assert len(cart.lines) == 2


def test_all_lines_are_in_the_cart_currency(trace: Trace, rejects: Rejects) -> None:
    cart = _cart(trace)

    rejects(
        cart,
        InvariantViolated,
        "currency_mismatch",
        lambda: cart.add_line(
            product=ICON, unit_price=Money(300, "USD"), licence=Licence.STANDARD, **trace
        ),
    )


def test_removing_a_line(trace: Trace, collect: Collect) -> None:
    cart = _cart_with_icon(trace)
    cart.add_line(product=SET, unit_price=Money(4900, "EUR"), licence=Licence.STANDARD, **trace)
    collect(cart)

    cart.remove_line(product=ICON, **trace)

    assert collect(cart) == ["Cart.LineRemoved"]
    assert cart.lines == (CartLine(SET, Money(4900, "EUR"), Licence.STANDARD),)
    assert (cart.total, cart.version) == (Money(4900, "EUR"), 4)


def test_removing_a_product_not_in_the_cart_is_not_found(trace: Trace, rejects: Rejects) -> None:
    cart = _cart_with_icon(trace)

    rejects(cart, NotFound, "not_in_cart", lambda: cart.remove_line(product=SET, **trace))


def test_clearing_empties_the_cart(trace: Trace, collect: Collect) -> None:
    cart = _cart_with_icon(trace)
    collect(cart)

    cart.clear(**trace)

    assert collect(cart) == ["Cart.Cleared"]
    assert (cart.lines, cart.total, cart.version) == ((), Money(0, "EUR"), 3)


def test_clearing_an_empty_cart_records_nothing(trace: Trace, collect: Collect) -> None:
    cart = _cart(trace)
    collect(cart)

    cart.clear(**trace)

    assert collect(cart) == []
    assert cart.version == 1


def test_checkout_closes_the_cart_and_names_its_order(trace: Trace, collect: Collect) -> None:
    cart = _cart_with_icon(trace)
    collect(cart)

    order_id = cart.check_out(**trace)

    assert collect(cart) == ["Cart.CheckedOut"]
    assert order_id == order_id_for_cart(cart.id)
    assert (cart.is_closed, cart.order_id, cart.version) == (True, order_id, 3)
    assert cart.lines == (CartLine(ICON, Money(300, "EUR"), Licence.STANDARD),)


def test_an_empty_cart_cannot_be_checked_out(trace: Trace, rejects: Rejects) -> None:
    cart = _cart(trace)

    rejects(cart, InvariantViolated, "cart_empty", lambda: cart.check_out(**trace))
    assert cart.is_closed is False


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            lambda cart, trace: cart.add_line(
                product=SET, unit_price=Money(1, "EUR"), licence=Licence.STANDARD, **trace
            ),
            id="add_line",
        ),
        pytest.param(lambda cart, trace: cart.remove_line(product=ICON, **trace), id="remove"),
        pytest.param(lambda cart, trace: cart.clear(**trace), id="clear"),
        pytest.param(lambda cart, trace: cart.check_out(**trace), id="check_out"),
    ],
)
def test_a_closed_cart_refuses_changes(
    trace: Trace,
    rejects: Rejects,
    command: Callable[[Cart, Trace], object],
) -> None:
    cart = _cart_with_icon(trace)
    cart.check_out(**trace)

    rejects(cart, InvariantViolated, "cart_closed", lambda: command(cart, trace))


def _week_later(cart: Cart) -> datetime:
    return cart.modified_on + timedelta(seconds=WEEK_S)


WEEK_S = 7 * 24 * 3600


def test_an_idle_cart_expires_and_refuses_every_change(
    trace: Trace, collect: Collect, rejects: Rejects
) -> None:
    cart = _cart_with_icon(trace)
    collect(cart)

    cart.expire(now=_week_later(cart), idle_s=WEEK_S, **trace)

    (expired,) = cart.collect_events()
    assert isinstance(expired, Cart.Expired)
    assert (expired.idle_s, expired.originator_version) == (WEEK_S, 3)
    assert (cart.is_expired, cart.is_closed, cart.version) == (True, False, 3)
    for command in (
        lambda: cart.add_line(
            product=SET, unit_price=Money(4900, "EUR"), licence=Licence.STANDARD, **trace
        ),
        lambda: cart.remove_line(product=ICON, **trace),
        lambda: cart.clear(**trace),
        lambda: cart.check_out(**trace),
        lambda: cart.expire(now=_week_later(cart), idle_s=WEEK_S, **trace),
    ):
        rejects(cart, Gone, "cart_expired", command)
    assert cart.lines == (CartLine(ICON, Money(300, "EUR"), Licence.STANDARD),)


def test_a_cart_changed_within_the_ttl_does_not_expire(trace: Trace, rejects: Rejects) -> None:
    cart = _cart_with_icon(trace)
    just_under = cart.modified_on + timedelta(seconds=WEEK_S - 1)

    rejects(
        cart,
        InvariantViolated,
        "cart_not_idle",
        lambda: cart.expire(now=just_under, idle_s=WEEK_S, **trace),
    )
    rejects(
        cart,
        InvalidValue,
        "invalid_idle_time",
        lambda: cart.expire(now=_week_later(cart), idle_s=-1, **trace),
    )
    assert cart.is_expired is False


def test_a_checked_out_cart_does_not_expire(trace: Trace, rejects: Rejects) -> None:
    cart = _cart_with_icon(trace)
    cart.check_out(**trace)

    rejects(
        cart,
        InvariantViolated,
        "cart_closed",
        lambda: cart.expire(now=_week_later(cart), idle_s=WEEK_S, **trace),
    )
