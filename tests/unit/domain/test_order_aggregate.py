from collections.abc import Callable
from uuid import UUID

import pytest

from domain.cart import CartLine
from domain.errors import DomainError, IllegalTransition, InvalidValue, InvariantViolated
from domain.ids import order_id_for_cart, transaction_id_for
from domain.money import Money
from domain.order import Order, OrderLine, OrderStatus, is_order_transition_allowed
from domain.products import Licence, ProductKind, ProductRef
from domain.traced_aggregate import Trace, TracedAggregate

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]
S = OrderStatus

CART_ID = UUID("00000000-0000-4000-8000-0000000000cc")
ICON = ProductRef(ProductKind.ICON, UUID("00000000-0000-4000-8000-000000000001"))
SET = ProductRef(ProductKind.SET, UUID("00000000-0000-4000-8000-000000000002"))
ICON_LINE = OrderLine(ICON, Money(300, "EUR"), Licence.STANDARD, icon_version=3)
SET_LINE = OrderLine(SET, Money(4900, "EUR"), Licence.EXTENDED, icon_version=None)
FREE_LINE = OrderLine(ICON, Money(0, "EUR"), Licence.STANDARD, icon_version=1)

EXPECTED_TRANSITIONS = {
    (S.PENDING, S.PAYMENT_PROCESSING),
    (S.PENDING, S.CANCELLED),
    (S.PAYMENT_PROCESSING, S.PAID),
    (S.PAYMENT_PROCESSING, S.FAILED),
    (S.FAILED, S.PAYMENT_PROCESSING),
    (S.FAILED, S.PAID),  # a late capture of the current attempt
    (S.FAILED, S.CANCELLED),
    (S.PAID, S.FULFILLED),
    (S.PAID, S.REFUNDED),
    (S.FULFILLED, S.REFUNDED),
}
EXPECTED_FREE_TRANSITIONS = EXPECTED_TRANSITIONS | {(S.PENDING, S.PAID)}


def _order(trace: Trace, lines: list[OrderLine] | None = None) -> Order:
    return Order.place(
        cart_id=CART_ID,
        customer_id="customer-1",
        lines=[ICON_LINE, SET_LINE] if lines is None else lines,
        **trace,
    )


def _current_or_first_transaction(order: Order) -> UUID:
    return order.transaction_id or transaction_id_for(order.id, 1)


COMMANDS: dict[OrderStatus, Callable[[Order, Trace], object]] = {
    S.PAYMENT_PROCESSING: lambda order, trace: order.start_payment(**trace),
    S.PAID: lambda order, trace: order.mark_paid(transaction_id=order.transaction_id, **trace),
    S.FAILED: lambda order, trace: order.mark_failed(
        transaction_id=_current_or_first_transaction(order), reason="card_declined", **trace
    ),
    S.FULFILLED: lambda order, trace: order.fulfil(**trace),
    S.CANCELLED: lambda order, trace: order.cancel(reason="changed mind", **trace),
    S.REFUNDED: lambda order, trace: order.refund(reason="duplicate purchase", **trace),
}
EVENTS = {
    S.PAYMENT_PROCESSING: "Order.PaymentStarted",
    S.PAID: "Order.Paid",
    S.FAILED: "Order.PaymentFailed",
    S.FULFILLED: "Order.Fulfilled",
    S.CANCELLED: "Order.Cancelled",
    S.REFUNDED: "Order.Refunded",
}
PATHS: dict[OrderStatus, list[OrderStatus]] = {
    S.PENDING: [],
    S.PAYMENT_PROCESSING: [S.PAYMENT_PROCESSING],
    S.PAID: [S.PAYMENT_PROCESSING, S.PAID],
    S.FAILED: [S.PAYMENT_PROCESSING, S.FAILED],
    S.FULFILLED: [S.PAYMENT_PROCESSING, S.PAID, S.FULFILLED],
    S.CANCELLED: [S.CANCELLED],
    S.REFUNDED: [S.PAYMENT_PROCESSING, S.PAID, S.REFUNDED],
}


def _order_in(status: OrderStatus, trace: Trace, lines: list[OrderLine]) -> Order:
    order = _order(trace, lines)
    for step in PATHS[status]:
        COMMANDS[step](order, trace)
    assert order.status is status
    return order


def _check_transition(
    current: OrderStatus,
    target: OrderStatus,
    *,
    lines: list[OrderLine],
    allowed: set[tuple[OrderStatus, OrderStatus]],
    trace: Trace,
    collect: Collect,
    rejects: Rejects,
) -> None:
    order = _order_in(current, trace, lines)
    collect(order)
    version = order.version

    if (current, target) in allowed:
        COMMANDS[target](order, trace)
        assert collect(order) == [EVENTS[target]]
        assert (order.status, order.version) == (target, version + 1)
    else:
        error = rejects(
            order, IllegalTransition, "illegal_transition", lambda: COMMANDS[target](order, trace)
        )
        assert isinstance(error, IllegalTransition)
        assert (error.from_state, error.to_state) == (current.value, target.value)
        assert order.status is current


@pytest.mark.parametrize("target", list(COMMANDS))
@pytest.mark.parametrize("current", list(OrderStatus))
def test_order_transition_table(
    trace: Trace,
    collect: Collect,
    rejects: Rejects,
    current: OrderStatus,
    target: OrderStatus,
) -> None:
    _check_transition(
        current,
        target,
        lines=[ICON_LINE, SET_LINE],
        allowed=EXPECTED_TRANSITIONS,
        trace=trace,
        collect=collect,
        rejects=rejects,
    )


@pytest.mark.parametrize("target", list(COMMANDS))
@pytest.mark.parametrize("current", list(OrderStatus))
def test_free_order_transition_table(
    trace: Trace,
    collect: Collect,
    rejects: Rejects,
    current: OrderStatus,
    target: OrderStatus,
) -> None:
    _check_transition(
        current,
        target,
        lines=[FREE_LINE],
        allowed=EXPECTED_FREE_TRANSITIONS,
        trace=trace,
        collect=collect,
        rejects=rejects,
    )


@pytest.mark.parametrize("total_is_zero", [False, True])
@pytest.mark.parametrize("target", list(OrderStatus))
@pytest.mark.parametrize("current", list(OrderStatus))
def test_the_transition_table_is_exactly_the_specified_one(
    current: OrderStatus, target: OrderStatus, *, total_is_zero: bool
) -> None:
    expected = EXPECTED_FREE_TRANSITIONS if total_is_zero else EXPECTED_TRANSITIONS

    allowed = is_order_transition_allowed(current, target, total_is_zero=total_is_zero)

    assert allowed is ((current, target) in expected)


def test_placing_an_order_freezes_lines_and_computes_the_total(
    trace: Trace, collect: Collect
) -> None:
    order = _order(trace)

    assert collect(order) == ["Order.Placed"]
    assert order.id == order_id_for_cart(CART_ID)
    assert (order.cart_id, order.customer_id) == (CART_ID, "customer-1")
    assert order.lines == (ICON_LINE, SET_LINE)
    assert (order.total, order.status, order.version) == (Money(5200, "EUR"), S.PENDING, 1)
    assert (order.payment_attempts, order.transaction_id) == (0, None)


def test_placed_carries_the_lines_and_total_as_plain_data(trace: Trace) -> None:
    (placed,) = _order(trace).collect_events()

    assert isinstance(placed, Order.Placed)
    assert placed.lines == [
        {
            "product_kind": "icon",
            "product_id": ICON.id,
            "unit_price": {"amount_minor": 300, "currency": "EUR"},
            "licence": "standard",
            "icon_version": 3,
        },
        {
            "product_kind": "set",
            "product_id": SET.id,
            "unit_price": {"amount_minor": 4900, "currency": "EUR"},
            "licence": "extended",
            "icon_version": None,
        },
    ]
    assert placed.total == {"amount_minor": 5200, "currency": "EUR"}


def test_order_lines_come_from_cart_lines_with_the_icon_version() -> None:
    cart_line = CartLine(ICON, Money(300, "EUR"), Licence.STANDARD)

    assert OrderLine.from_cart_line(cart_line, icon_version=3) == ICON_LINE


@pytest.mark.parametrize(
    ("product", "icon_version"),
    [(ICON, None), (ICON, 0), (SET, 1)],
    ids=["icon-without-version", "icon-version-zero", "set-with-version"],
)
def test_an_icon_line_needs_a_version_and_a_set_line_none(
    product: ProductRef, icon_version: int | None
) -> None:
    with pytest.raises(InvalidValue) as raised:
        OrderLine(product, Money(1, "EUR"), Licence.STANDARD, icon_version)

    assert raised.value.code == "invalid_icon_version"


@pytest.mark.parametrize(
    ("lines", "error_type", "code"),
    [
        ([], InvariantViolated, "order_empty"),
        (
            [ICON_LINE, OrderLine(SET, Money(100, "USD"), Licence.STANDARD, None)],
            InvariantViolated,
            "currency_mismatch",
        ),
        ([ICON_LINE, ICON_LINE], InvariantViolated, "duplicate_order_line"),
    ],
    ids=["empty", "mixed-currency", "duplicate-product"],
)
def test_placing_rejects_bad_lines(
    trace: Trace, lines: list[OrderLine], error_type: type[DomainError], code: str
) -> None:
    with pytest.raises(error_type) as raised:
        _order(trace, lines)

    assert raised.value.code == code


def test_starting_a_payment_opens_attempt_one(trace: Trace) -> None:
    order = _order(trace)
    order.collect_events()

    transaction_id = order.start_payment(**trace)

    (started,) = order.collect_events()
    assert isinstance(started, Order.PaymentStarted)
    assert (started.attempt, started.transaction_id) == (1, transaction_id)
    assert transaction_id == transaction_id_for(order.id, 1)
    assert (order.payment_attempts, order.transaction_id) == (1, transaction_id)


def test_a_failed_payment_can_be_retried_with_a_new_transaction(
    trace: Trace, collect: Collect
) -> None:
    order = _order(trace)
    first = order.start_payment(**trace)
    order.mark_failed(transaction_id=first, reason="card_declined", **trace)
    collect(order)

    second = order.start_payment(**trace)
    order.mark_paid(transaction_id=second, **trace)

    assert collect(order) == ["Order.PaymentStarted", "Order.Paid"]
    assert second == transaction_id_for(order.id, 2) != first
    assert (order.payment_attempts, order.status, order.version) == (2, S.PAID, 5)


def test_only_the_current_attempt_can_pay(trace: Trace, rejects: Rejects) -> None:
    order = _order(trace)
    first = order.start_payment(**trace)
    order.mark_failed(transaction_id=first, reason="card_declined", **trace)
    order.start_payment(**trace)

    rejects(
        order,
        InvariantViolated,
        "transaction_mismatch",
        lambda: order.mark_paid(transaction_id=first, **trace),
    )


def test_a_failed_order_is_paid_only_by_its_current_attempt(
    trace: Trace, collect: Collect, rejects: Rejects
) -> None:
    order = _order(trace)
    first = order.start_payment(**trace)
    order.mark_failed(transaction_id=first, reason="card_declined", **trace)
    collect(order)

    rejects(
        order,
        InvariantViolated,
        "transaction_mismatch",
        lambda: order.mark_paid(transaction_id=transaction_id_for(order.id, 2), **trace),
    )
    order.mark_paid(transaction_id=first, **trace)

    assert collect(order) == ["Order.Paid"]
    assert (order.payment_attempts, order.status, order.version) == (1, S.PAID, 4)


def test_only_the_current_attempt_can_fail(trace: Trace, rejects: Rejects) -> None:
    order = _order(trace)
    order.start_payment(**trace)

    rejects(
        order,
        InvariantViolated,
        "transaction_mismatch",
        lambda: order.mark_failed(
            transaction_id=transaction_id_for(order.id, 9), reason="x", **trace
        ),
    )


def test_an_order_with_a_total_cannot_be_paid_without_a_payment(
    trace: Trace, rejects: Rejects
) -> None:
    order = _order(trace)

    rejects(
        order,
        IllegalTransition,
        "illegal_transition",
        lambda: order.mark_paid(transaction_id=None, **trace),
    )


def test_a_free_order_goes_straight_to_paid(trace: Trace, collect: Collect) -> None:
    order = _order(trace, [FREE_LINE])
    collect(order)

    order.mark_paid(transaction_id=None, **trace)

    assert collect(order) == ["Order.Paid"]
    assert (order.total, order.status, order.version) == (Money(0, "EUR"), S.PAID, 2)


def test_a_free_order_paid_directly_names_no_transaction(trace: Trace, rejects: Rejects) -> None:
    order = _order(trace, [FREE_LINE])

    rejects(
        order,
        InvariantViolated,
        "transaction_mismatch",
        lambda: order.mark_paid(transaction_id=transaction_id_for(order.id, 1), **trace),
    )


def test_the_whole_happy_path_then_refund(trace: Trace, collect: Collect) -> None:
    order = _order(trace)

    transaction_id = order.start_payment(**trace)
    order.mark_paid(transaction_id=transaction_id, **trace)
    order.fulfil(**trace)
    order.refund(reason="customer request", **trace)

    assert collect(order) == [
        "Order.Placed",
        "Order.PaymentStarted",
        "Order.Paid",
        "Order.Fulfilled",
        "Order.Refunded",
    ]
    assert (order.status, order.version) == (S.REFUNDED, 5)
