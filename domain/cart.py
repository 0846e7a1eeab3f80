"""The Cart aggregate: a customer's basket, one line per product, closed by checkout."""

from dataclasses import dataclass
from datetime import datetime
from typing import Self, TypedDict
from uuid import UUID

from eventsourcing.domain import event

from domain.choices import parse_choice
from domain.errors import ErrorCode, Gone, InvalidValue, InvariantViolated, NotFound
from domain.ids import order_id_for_cart
from domain.money import Money, MoneyData, check_same_currency
from domain.products import Licence, ProductKind, ProductRef
from domain.traced_aggregate import TracedAggregate


class CartLineData(TypedDict):
    """A cart line as stored in aggregate state."""

    product_kind: str
    product_id: UUID
    unit_price: MoneyData
    licence: str


@dataclass(frozen=True, slots=True)
class CartLine:
    product: ProductRef
    unit_price: Money
    licence: Licence


class Cart(TracedAggregate):
    """All lines are priced in the cart's currency; prices are the caller's quote at add time.

    An open cart left idle (no event) for the cart TTL is expired by the sweeper: an expired
    cart refuses every further change (``cart_expired``)."""

    class Opened(TracedAggregate.Created):
        owner_id: str
        currency: str

    class LineAdded(TracedAggregate.Event):
        product_kind: str
        product_id: UUID
        unit_price: MoneyData
        licence: str

    class LineRemoved(TracedAggregate.Event):
        product_kind: str
        product_id: UUID

    class Cleared(TracedAggregate.Event):
        pass

    class CheckedOut(TracedAggregate.Event):
        order_id: UUID
        total: MoneyData

    class Expired(TracedAggregate.Event):
        idle_s: int

    @classmethod
    def open(cls, *, owner_id: str, currency: str, actor: str, correlation_id: str) -> Self:
        return cls(
            owner_id=owner_id,
            currency=Money.zero(currency).currency,
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Opened)
    def __init__(self, *, owner_id: str, currency: str, actor: str, correlation_id: str) -> None:
        self._owner_id = owner_id
        self._currency = currency
        self._lines: list[CartLineData] = []
        self._order_id: UUID | None = None
        self._expired = False

    @property
    def owner_id(self) -> str:
        return self._owner_id

    @property
    def currency(self) -> str:
        return self._currency

    @property
    def lines(self) -> tuple[CartLine, ...]:
        return tuple(_line_from_data(line) for line in self._lines)

    @property
    def total(self) -> Money:
        return Money.sum((line.unit_price for line in self.lines), self._currency)

    @property
    def is_closed(self) -> bool:
        return self._order_id is not None

    @property
    def is_expired(self) -> bool:
        return self._expired

    @property
    def order_id(self) -> UUID | None:
        """The order placed at checkout, once the cart is closed."""
        return self._order_id

    def contains(self, product: ProductRef) -> bool:
        return self._index_of(product) is not None

    def add_line(
        self,
        *,
        product: ProductRef,
        unit_price: Money,
        licence: Licence,
        actor: str,
        correlation_id: str,
    ) -> None:
        self._check_open()
        self._check_not_in_cart(product)
        check_same_currency(self._currency, unit_price.currency)
        self._line_added(
            product_kind=product.kind.value,
            product_id=product.id,
            unit_price=unit_price.to_data(),
            licence=parse_choice(Licence, licence).value,
            actor=actor,
            correlation_id=correlation_id,
        )

    def remove_line(self, *, product: ProductRef, actor: str, correlation_id: str) -> None:
        self._check_open()
        self._check_in_cart(product)
        self._line_removed(
            product_kind=product.kind.value,
            product_id=product.id,
            actor=actor,
            correlation_id=correlation_id,
        )

    def clear(self, *, actor: str, correlation_id: str) -> None:
        """Empties the cart; an already empty cart records nothing."""
        self._check_open()
        if self._lines:
            self._cleared(actor=actor, correlation_id=correlation_id)

    def check_out(self, *, actor: str, correlation_id: str) -> UUID:
        """Closes the cart and returns the id of the order to place from its lines."""
        self._check_open()
        self._check_not_empty()
        order_id = order_id_for_cart(self.id)
        self._checked_out(
            order_id=order_id,
            total=self.total.to_data(),
            actor=actor,
            correlation_id=correlation_id,
        )
        return order_id

    def expire(self, *, now: datetime, idle_s: int, actor: str, correlation_id: str) -> None:
        """Ends an open cart that has had no event for at least ``idle_s`` seconds at ``now``."""
        self._check_open()
        self._check_idle(now, idle_s)
        self._expired_event(idle_s=idle_s, actor=actor, correlation_id=correlation_id)

    def _index_of(self, product: ProductRef) -> int | None:
        for index, line in enumerate(self._lines):
            if line["product_kind"] == product.kind and line["product_id"] == product.id:
                return index
        return None

    def _check_open(self) -> None:
        if self._expired:
            raise Gone(ErrorCode.CART_EXPIRED, "the cart expired after being left idle")
        if self.is_closed:
            raise InvariantViolated(ErrorCode.CART_CLOSED, "the cart was checked out")

    def _check_idle(self, now: datetime, idle_s: int) -> None:
        if isinstance(idle_s, bool) or not isinstance(idle_s, int) or idle_s < 0:
            raise InvalidValue(ErrorCode.INVALID_IDLE_TIME, f"idle time must be >= 0: {idle_s!r}")
        idle = (now - self.modified_on).total_seconds()
        if idle < idle_s:
            raise InvariantViolated(
                ErrorCode.CART_NOT_IDLE, f"the cart changed {idle:.0f}s ago, under {idle_s}s"
            )

    def _check_not_in_cart(self, product: ProductRef) -> None:
        if self.contains(product):
            raise InvariantViolated(
                ErrorCode.ALREADY_IN_CART, f"{product.kind} {product.id} is already in the cart"
            )

    def _check_in_cart(self, product: ProductRef) -> None:
        if not self.contains(product):
            raise NotFound(ErrorCode.NOT_IN_CART, f"{product.kind} {product.id} is not in the cart")

    def _check_not_empty(self) -> None:
        if not self._lines:
            raise InvariantViolated(ErrorCode.CART_EMPTY, "an empty cart cannot be checked out")

    @event(LineAdded)
    def _line_added(
        self,
        *,
        product_kind: str,
        product_id: UUID,
        unit_price: MoneyData,
        licence: str,
        actor: str,
        correlation_id: str,
    ) -> None:
        self._lines.append(
            {
                "product_kind": product_kind,
                "product_id": product_id,
                "unit_price": unit_price,
                "licence": licence,
            }
        )

    @event(LineRemoved)
    def _line_removed(
        self, *, product_kind: str, product_id: UUID, actor: str, correlation_id: str
    ) -> None:
        product = ProductRef(ProductKind(product_kind), product_id)
        self._lines = [line for line in self._lines if _line_product(line) != product]

    @event(Cleared)
    def _cleared(self, *, actor: str, correlation_id: str) -> None:
        self._lines = []

    @event(CheckedOut)
    def _checked_out(
        self, *, order_id: UUID, total: MoneyData, actor: str, correlation_id: str
    ) -> None:
        self._order_id = order_id

    @event(Expired)
    def _expired_event(self, *, idle_s: int, actor: str, correlation_id: str) -> None:
        self._expired = True


def _line_product(line: CartLineData) -> ProductRef:
    return ProductRef(ProductKind(line["product_kind"]), line["product_id"])


def _line_from_data(line: CartLineData) -> CartLine:
    return CartLine(
        product=_line_product(line),
        unit_price=Money.from_data(line["unit_price"]),
        licence=Licence(line["licence"]),
    )
