"""An in-memory payment provider for unit tests only (integration tests use stripe-mock)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from uuid import UUID

from commands.payments.port import (
    CANCELED,
    SUCCEEDED,
    PaymentProviderRejected,
    PaymentProviderUnavailable,
    ProviderIntent,
)
from domain.money import Money


@dataclass
class FakePaymentProvider:
    """Keeps intents in a dict keyed by idempotency key, like the real provider's idempotency.

    ``down`` makes every call raise ``PaymentProviderUnavailable``; ``settle`` lets a test play
    the customer paying (or failing to pay) an intent.
    """

    name: str = "stripe"
    down: bool = False
    intents: dict[str, ProviderIntent] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    refunds: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _check_up(self) -> None:
        if self.down:
            raise PaymentProviderUnavailable("the fake provider is down", retry_after_s=30)

    def create_intent(
        self, *, transaction_id: UUID, order_id: UUID, amount: Money
    ) -> ProviderIntent:
        self._check_up()
        key = str(transaction_id)
        self.calls.append(("create_intent", key))
        if key in self.by_key:
            return self.intents[self.by_key[key]]
        reference = f"pi_fake_{next(self._ids)}"
        intent = ProviderIntent(
            reference=reference,
            client_secret=f"{reference}_secret_fake",
            status="requires_payment_method",
            amount=amount,
            received=Money.zero(amount.currency),
            metadata={"transaction_id": key, "order_id": str(order_id)},
        )
        self.intents[reference] = intent
        self.by_key[key] = reference
        return intent

    def retrieve_intent(self, reference: str) -> ProviderIntent | None:
        self._check_up()
        self.calls.append(("retrieve_intent", reference))
        return self.intents.get(reference)

    def cancel_intent(self, reference: str) -> ProviderIntent:
        self._check_up()
        self.calls.append(("cancel_intent", reference))
        intent = self.intents[reference]
        if intent.status == SUCCEEDED:
            raise PaymentProviderRejected(f"intent {reference} has succeeded")
        self.intents[reference] = replace(intent, status=CANCELED)
        return self.intents[reference]

    def refund(self, *, reference: str, transaction_id: UUID) -> str:
        self._check_up()
        self.calls.append(("refund", reference))
        key = f"refund:{transaction_id}"
        return self.refunds.setdefault(key, f"re_fake_{next(self._ids)}")

    def settle(self, reference: str, *, received: Money | None = None) -> ProviderIntent:
        """Play the customer paying ``reference`` (``received`` defaults to the amount)."""
        intent = self.intents[reference]
        self.intents[reference] = replace(
            intent, status=SUCCEEDED, received=received or intent.amount
        )
        return self.intents[reference]
