"""Money: integer minor units plus an ISO 4217 currency code."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from domain.errors import ErrorCode, InvalidValue, InvariantViolated


class MoneyData(TypedDict):
    """Money as stored in events and aggregate state."""

    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int or self.amount_minor < 0:
            raise InvalidValue(
                ErrorCode.INVALID_MONEY,
                f"amount must be a non-negative integer of minor units, got {self.amount_minor!r}",
            )
        if not _is_currency_code(self.currency):
            raise InvalidValue(
                ErrorCode.INVALID_CURRENCY,
                f"currency must be three upper-case letters, got {self.currency!r}",
            )

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(0, currency)

    @classmethod
    def from_data(cls, data: MoneyData) -> "Money":
        return cls(data["amount_minor"], data["currency"])

    @classmethod
    def sum(cls, amounts: Iterable["Money"], currency: str) -> "Money":
        total = cls.zero(currency)
        for amount in amounts:
            total += amount
        return total

    @property
    def is_zero(self) -> bool:
        return self.amount_minor == 0

    def to_data(self) -> MoneyData:
        return {"amount_minor": self.amount_minor, "currency": self.currency}

    def __add__(self, other: "Money") -> "Money":
        check_same_currency(self.currency, other.currency)
        return Money(self.amount_minor + other.amount_minor, self.currency)


def check_same_currency(expected: str, actual: str) -> None:
    if actual != expected:
        raise InvariantViolated(
            ErrorCode.CURRENCY_MISMATCH, f"expected currency {expected}, got {actual}"
        )


def _is_currency_code(value: object) -> bool:
    return isinstance(value, str) and len(value) == 3 and value.isascii() and value.isupper()
