"""The Order aggregate: what a customer bought, frozen at checkout, and its payment life cycle."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Self, TypedDict
from uuid import UUID

from eventsourcing.domain import event

from domain.cart import CartLine
from domain.choices import parse_choice
from domain.errors import ErrorCode, IllegalTransition, InvalidValue, InvariantViolated
from domain.ids import order_id_for_cart, transaction_id_for
from domain.money import Money, MoneyData, check_same_currency
from domain.products import Licence, ProductKind, ProductRef
from domain.traced_aggregate import TracedAggregate


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAYMENT_PROCESSING = "payment_processing"
    PAID = "paid"
    FULFILLED = "fulfilled"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


ORDER_TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAYMENT_PROCESSING, OrderStatus.CANCELLED}),
    OrderStatus.PAYMENT_PROCESSING: frozenset({OrderStatus.PAID, OrderStatus.FAILED}),
    # FAILED → PAID: a late capture of the current attempt's intent (``mark_paid`` checks that
    # the paying transaction is the current one).
    OrderStatus.FAILED: frozenset(
        {OrderStatus.PAYMENT_PROCESSING, OrderStatus.PAID, OrderStatus.CANCELLED}
    ),
    OrderStatus.PAID: frozenset({OrderStatus.FULFILLED, OrderStatus.REFUNDED}),
    OrderStatus.FULFILLED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}
FREE_ORDER_TRANSITIONS: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {(OrderStatus.PENDING, OrderStatus.PAID)}
)


def is_order_transition_allowed(
    current: OrderStatus, target: OrderStatus, *, total_is_zero: bool
) -> bool:
    """The transition table; an order with a zero total may also go straight to paid."""
    if target in ORDER_TRANSITIONS[current]:
        return True
    return total_is_zero and (current, target) in FREE_ORDER_TRANSITIONS


class OrderLineData(TypedDict):
    """An order line as stored in events and aggregate state."""

    product_kind: str
    product_id: UUID
    unit_price: MoneyData
    licence: str
    icon_version: int | None


@dataclass(frozen=True, slots=True)
class OrderLine:
    """A line frozen at checkout. ``icon_version`` is the icon's ``svg_revision`` for an icon line
    and ``None`` for a set line (a set's icons are resolved when entitlements are granted).
    """

    product: ProductRef
    unit_price: Money
    licence: Licence
    icon_version: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "licence", parse_choice(Licence, self.licence))
        if self.product.kind is ProductKind.ICON:
            valid = type(self.icon_version) is int and self.icon_version >= 1
        else:
            valid = self.icon_version is None
        if not valid:
            raise InvalidValue(
                ErrorCode.INVALID_ICON_VERSION,
                f"{self.product.kind} line cannot have icon version {self.icon_version!r}",
            )

    @classmethod
    def from_cart_line(cls, line: CartLine, *, icon_version: int | None) -> "OrderLine":
        return cls(line.product, line.unit_price, line.licence, icon_version)

    @classmethod
    def from_data(cls, data: OrderLineData) -> "OrderLine":
        return cls(
            product=ProductRef(ProductKind(data["product_kind"]), data["product_id"]),
            unit_price=Money.from_data(data["unit_price"]),
            licence=Licence(data["licence"]),
            icon_version=data["icon_version"],
        )

    def to_data(self) -> OrderLineData:
        return {
            "product_kind": self.product.kind.value,
            "product_id": self.product.id,
            "unit_price": self.unit_price.to_data(),
            "licence": self.licence.value,
            "icon_version": self.icon_version,
        }


class Order(TracedAggregate):
    """One order per checked-out cart (its id derives from the cart id)."""

    class Placed(TracedAggregate.Created):
        cart_id: UUID
        customer_id: str
        lines: list[OrderLineData]
        total: MoneyData

    class PaymentStarted(TracedAggregate.Event):
        attempt: int
        transaction_id: UUID

    class Paid(TracedAggregate.Event):
        transaction_id: UUID | None

    class PaymentFailed(TracedAggregate.Event):
        transaction_id: UUID
        reason: str

    class Fulfilled(TracedAggregate.Event):
        pass

    class Cancelled(TracedAggregate.Event):
        reason: str

    class Refunded(TracedAggregate.Event):
        reason: str

    @staticmethod
    def create_id(cart_id: UUID) -> UUID:
        return order_id_for_cart(cart_id)

    @classmethod
    def place(
        cls,
        *,
        cart_id: UUID,
        customer_id: str,
        lines: Sequence[OrderLine],
        actor: str,
        correlation_id: str,
    ) -> Self:
        _check_lines(lines)
        total = Money.sum((line.unit_price for line in lines), lines[0].unit_price.currency)
        return cls(
            cart_id=cart_id,
            customer_id=customer_id,
            lines=[line.to_data() for line in lines],
            total=total.to_data(),
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Placed)
    def __init__(
        self,
        *,
        cart_id: UUID,
        customer_id: str,
        lines: list[OrderLineData],
        total: MoneyData,
        actor: str,
        correlation_id: str,
    ) -> None:
        self._cart_id = cart_id
        self._customer_id = customer_id
        self._lines = list(lines)
        self._total = total
        self._status = OrderStatus.PENDING.value
        self._payment_attempts = 0
        self._transaction_id: UUID | None = None

    @property
    def cart_id(self) -> UUID:
        return self._cart_id

    @property
    def customer_id(self) -> str:
        return self._customer_id

    @property
    def lines(self) -> tuple[OrderLine, ...]:
        return tuple(OrderLine.from_data(line) for line in self._lines)

    @property
    def total(self) -> Money:
        return Money.from_data(self._total)

    @property
    def status(self) -> OrderStatus:
        return OrderStatus(self._status)

    @property
    def payment_attempts(self) -> int:
        return self._payment_attempts

    @property
    def transaction_id(self) -> UUID | None:
        """The transaction of the latest payment attempt."""
        return self._transaction_id

    def can_transition_to(self, target: OrderStatus) -> bool:
        return is_order_transition_allowed(self.status, target, total_is_zero=self.total.is_zero)

    def start_payment(self, *, actor: str, correlation_id: str) -> UUID:
        """Opens a new payment attempt; returns the id its Transaction must be created with."""
        self._check_transition(OrderStatus.PAYMENT_PROCESSING)
        attempt = self._payment_attempts + 1
        transaction_id = transaction_id_for(self.id, attempt)
        self._payment_started(
            attempt=attempt,
            transaction_id=transaction_id,
            actor=actor,
            correlation_id=correlation_id,
        )
        return transaction_id

    def mark_paid(self, *, transaction_id: UUID | None, actor: str, correlation_id: str) -> None:
        """Paid by the current attempt's transaction, or with ``None`` for a free order. A
        failed order may be paid too: its current attempt's intent was captured late."""
        self._check_transition(OrderStatus.PAID)
        self._check_current_transaction(transaction_id)
        self._paid(transaction_id=transaction_id, actor=actor, correlation_id=correlation_id)

    def mark_failed(
        self, *, transaction_id: UUID, reason: str, actor: str, correlation_id: str
    ) -> None:
        self._check_transition(OrderStatus.FAILED)
        self._check_current_transaction(transaction_id)
        self._payment_failed(
            transaction_id=transaction_id, reason=reason, actor=actor, correlation_id=correlation_id
        )

    def fulfil(self, *, actor: str, correlation_id: str) -> None:
        self._check_transition(OrderStatus.FULFILLED)
        self._fulfilled(actor=actor, correlation_id=correlation_id)

    def cancel(self, *, reason: str, actor: str, correlation_id: str) -> None:
        self._check_transition(OrderStatus.CANCELLED)
        self._cancelled(reason=reason, actor=actor, correlation_id=correlation_id)

    def refund(self, *, reason: str, actor: str, correlation_id: str) -> None:
        self._check_transition(OrderStatus.REFUNDED)
        self._refunded(reason=reason, actor=actor, correlation_id=correlation_id)

    def _check_transition(self, target: OrderStatus) -> None:
        if not self.can_transition_to(target):
            raise IllegalTransition("Order", self.status.value, target.value)

    def _check_current_transaction(self, transaction_id: UUID | None) -> None:
        if transaction_id != self._transaction_id:
            raise InvariantViolated(
                ErrorCode.TRANSACTION_MISMATCH,
                f"transaction {transaction_id} is not the current payment attempt "
                f"({self._transaction_id})",
            )

    @event(PaymentStarted)
    def _payment_started(
        self, *, attempt: int, transaction_id: UUID, actor: str, correlation_id: str
    ) -> None:
        self._payment_attempts = attempt
        self._transaction_id = transaction_id
        self._status = OrderStatus.PAYMENT_PROCESSING.value

    @event(Paid)
    def _paid(self, *, transaction_id: UUID | None, actor: str, correlation_id: str) -> None:
        self._status = OrderStatus.PAID.value

    @event(PaymentFailed)
    def _payment_failed(
        self, *, transaction_id: UUID, reason: str, actor: str, correlation_id: str
    ) -> None:
        self._status = OrderStatus.FAILED.value

    @event(Fulfilled)
    def _fulfilled(self, *, actor: str, correlation_id: str) -> None:
        self._status = OrderStatus.FULFILLED.value

    @event(Cancelled)
    def _cancelled(self, *, reason: str, actor: str, correlation_id: str) -> None:
        self._status = OrderStatus.CANCELLED.value

    @event(Refunded)
    def _refunded(self, *, reason: str, actor: str, correlation_id: str) -> None:
        self._status = OrderStatus.REFUNDED.value


def _check_lines(lines: Sequence[OrderLine]) -> None:
    if not lines:
        raise InvariantViolated(ErrorCode.ORDER_EMPTY, "an order needs at least one line")
    currency = lines[0].unit_price.currency
    for line in lines:
        check_same_currency(currency, line.unit_price.currency)
    products = [line.product for line in lines]
    if len(set(products)) != len(products):
        raise InvariantViolated(
            ErrorCode.DUPLICATE_ORDER_LINE, "each product may appear on one line only"
        )
