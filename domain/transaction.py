"""The Transaction aggregate: one payment attempt for an order with an external provider."""

from collections.abc import Mapping
from enum import StrEnum
from typing import Self
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.errors import ErrorCode, IllegalTransition, InvalidValue, InvariantViolated
from domain.ids import ICONMARKET_NAMESPACE, transaction_id_for
from domain.money import Money, MoneyData
from domain.traced_aggregate import TracedAggregate


class TransactionStatus(StrEnum):
    CREATED = "created"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


class Mismatch(StrEnum):
    """What the provider reported differently from what was expected."""

    AMOUNT = "amount"
    CURRENCY = "currency"
    PROVIDER_REFERENCE = "provider_reference"


PAYMENT_MISMATCH_ALERT = "payment_mismatch"

TRANSACTION_TRANSITIONS: Mapping[TransactionStatus, frozenset[TransactionStatus]] = {
    TransactionStatus.CREATED: frozenset({TransactionStatus.SUCCEEDED, TransactionStatus.FAILED}),
    TransactionStatus.SUCCEEDED: frozenset(
        {TransactionStatus.REFUNDED, TransactionStatus.DISPUTED}
    ),
    # A late capture: Stripe keeps a failed intent payable (``requires_payment_method``) until
    # it is cancelled, so the customer may still pay it after ``payment_failed``.
    TransactionStatus.FAILED: frozenset({TransactionStatus.SUCCEEDED}),
    TransactionStatus.REFUNDED: frozenset(),
    TransactionStatus.DISPUTED: frozenset(),
}


class Transaction(TracedAggregate):
    """Attempt ``attempt`` to pay ``order_id``; its id derives from both, so a retried command
    collides instead of charging twice. A success whose captured amount or provider reference
    differs from the expected one is recorded with its ``mismatches`` and raises an alert
    (``Transaction.AlertRaised``): such a transaction never pays its order. A failed attempt
    may still succeed later (a late capture on the same intent, see docs/payments.md).
    """

    class Started(TracedAggregate.Created):
        order_id: UUID
        attempt: int
        amount: MoneyData
        provider: str
        provider_reference: str | None

    class Succeeded(TracedAggregate.Event):
        provider_reference: str
        captured: MoneyData
        mismatches: list[str]

    class Failed(TracedAggregate.Event):
        provider_reference: str | None
        reason: str

    class Refunded(TracedAggregate.Event):
        reason: str

    class IntentCreated(TracedAggregate.Event):
        provider_reference: str

    class AlertRaised(TracedAggregate.Event):
        alert: str
        detail: str

    class Disputed(TracedAggregate.Event):
        reason: str

    @staticmethod
    def create_id(order_id: UUID, attempt: int) -> UUID:
        return transaction_id_for(order_id, attempt)

    @classmethod
    def start(
        cls,
        *,
        order_id: UUID,
        attempt: int,
        amount: Money,
        provider: str,
        provider_reference: str | None = None,
        actor: str,
        correlation_id: str,
    ) -> Self:
        _check_attempt(attempt)
        _check_provider(provider)
        return cls(
            order_id=order_id,
            attempt=attempt,
            amount=amount.to_data(),
            provider=provider,
            provider_reference=provider_reference,
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Started)
    def __init__(
        self,
        *,
        order_id: UUID,
        attempt: int,
        amount: MoneyData,
        provider: str,
        provider_reference: str | None,
        actor: str,
        correlation_id: str,
    ) -> None:
        self._order_id = order_id
        self._attempt = attempt
        self._amount = amount
        self._provider = provider
        self._provider_reference = provider_reference
        self._status = TransactionStatus.CREATED.value
        self._captured: MoneyData | None = None
        self._mismatches: list[str] = []
        self._failure_reason: str | None = None
        self._alerts: list[str] = []

    @property
    def order_id(self) -> UUID:
        return self._order_id

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def amount(self) -> Money:
        return Money.from_data(self._amount)

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def provider_reference(self) -> str | None:
        return self._provider_reference

    @property
    def status(self) -> TransactionStatus:
        return TransactionStatus(self._status)

    @property
    def captured(self) -> Money | None:
        return None if self._captured is None else Money.from_data(self._captured)

    @property
    def mismatches(self) -> frozenset[Mismatch]:
        return frozenset(Mismatch(item) for item in self._mismatches)

    @property
    def has_mismatch(self) -> bool:
        return bool(self._mismatches)

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(self._alerts)

    def succeed(
        self, *, provider_reference: str, captured: Money, actor: str, correlation_id: str
    ) -> None:
        self._check_transition(TransactionStatus.SUCCEEDED)
        mismatches = self._mismatches_with(provider_reference, captured)
        detail = (
            f"{', '.join(mismatches)} differ: expected {self.amount.amount_minor} "
            f"{self.amount.currency} with intent {self._provider_reference}, captured "
            f"{captured.amount_minor} {captured.currency} with intent {provider_reference}"
        )
        self._succeeded(
            provider_reference=provider_reference,
            captured=captured.to_data(),
            mismatches=mismatches,
            actor=actor,
            correlation_id=correlation_id,
        )
        if mismatches:
            self.raise_alert(
                alert=PAYMENT_MISMATCH_ALERT,
                detail=detail,
                actor=actor,
                correlation_id=correlation_id,
            )

    def fail(
        self, *, provider_reference: str | None, reason: str, actor: str, correlation_id: str
    ) -> None:
        self._check_transition(TransactionStatus.FAILED)
        self._failed(
            provider_reference=provider_reference or self._provider_reference,
            reason=reason,
            actor=actor,
            correlation_id=correlation_id,
        )

    def refund(self, *, reason: str, actor: str, correlation_id: str) -> None:
        self._check_transition(TransactionStatus.REFUNDED)
        self._refunded(reason=reason, actor=actor, correlation_id=correlation_id)

    def dispute(self, *, reason: str, actor: str, correlation_id: str) -> None:
        """The customer disputed the charge: the provider has taken the money back."""
        self._check_transition(TransactionStatus.DISPUTED)
        self._disputed(reason=reason, actor=actor, correlation_id=correlation_id)

    def record_intent(self, *, provider_reference: str, actor: str, correlation_id: str) -> bool:
        """Records the provider's payment intent; the same reference again records nothing.

        Returns whether an event was recorded. A different reference means two intents exist
        for one attempt, which the idempotency key must prevent: it is refused.
        """
        if self._provider_reference == provider_reference:
            return False
        if self._provider_reference is not None or not provider_reference.strip():
            raise InvariantViolated(
                ErrorCode.TRANSACTION_MISMATCH,
                f"transaction {self.id} already has intent {self._provider_reference}, "
                f"not {provider_reference!r}",
            )
        self._intent_created(
            provider_reference=provider_reference, actor=actor, correlation_id=correlation_id
        )
        return True

    def raise_alert(self, *, alert: str, detail: str, actor: str, correlation_id: str) -> None:
        """Records something an operator must look at (the money and the order disagree)."""
        self._alert_raised(alert=alert, detail=detail, actor=actor, correlation_id=correlation_id)

    def _mismatches_with(self, provider_reference: str, captured: Money) -> list[str]:
        mismatches: list[str] = []
        if captured.amount_minor != self.amount.amount_minor:
            mismatches.append(Mismatch.AMOUNT.value)
        if captured.currency != self.amount.currency:
            mismatches.append(Mismatch.CURRENCY.value)
        if self._provider_reference not in (None, provider_reference):
            mismatches.append(Mismatch.PROVIDER_REFERENCE.value)
        return mismatches

    def _check_transition(self, target: TransactionStatus) -> None:
        if target not in TRANSACTION_TRANSITIONS[self.status]:
            raise IllegalTransition("Transaction", self.status.value, target.value)

    @event(Succeeded)
    def _succeeded(
        self,
        *,
        provider_reference: str,
        captured: MoneyData,
        mismatches: list[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._status = TransactionStatus.SUCCEEDED.value
        self._provider_reference = provider_reference
        self._captured = captured
        self._mismatches = list(mismatches)

    @event(Failed)
    def _failed(
        self, *, provider_reference: str | None, reason: str, actor: str, correlation_id: str
    ) -> None:
        self._status = TransactionStatus.FAILED.value
        self._provider_reference = provider_reference
        self._failure_reason = reason

    @event(Refunded)
    def _refunded(self, *, reason: str, actor: str, correlation_id: str) -> None:
        self._status = TransactionStatus.REFUNDED.value

    @event(IntentCreated)
    def _intent_created(self, *, provider_reference: str, actor: str, correlation_id: str) -> None:
        self._provider_reference = provider_reference

    @event(AlertRaised)
    def _alert_raised(self, *, alert: str, detail: str, actor: str, correlation_id: str) -> None:
        self._alerts.append(alert)

    @event(Disputed)
    def _disputed(self, *, reason: str, actor: str, correlation_id: str) -> None:
        self._status = TransactionStatus.DISPUTED.value


def _check_attempt(attempt: int) -> None:
    if type(attempt) is not int or attempt < 1:
        raise InvalidValue(ErrorCode.INVALID_ATTEMPT, f"attempts count from 1, got {attempt!r}")


def _check_provider(provider: str) -> None:
    if not provider.strip():
        raise InvalidValue(ErrorCode.INVALID_PROVIDER, "a payment provider name is required")


_INTENT_LINKS = uuid5(ICONMARKET_NAMESPACE, "payment-intent-link")


class PaymentIntentLink(TracedAggregate):
    """Finds a transaction from the provider's payment intent id: disputes and some refunds name
    only the intent. Its id derives from provider and reference, so a lookup is one load."""

    class Linked(TracedAggregate.Created):
        provider: str
        provider_reference: str
        transaction_id: UUID

    @staticmethod
    def create_id(provider: str, provider_reference: str) -> UUID:
        return uuid5(_INTENT_LINKS, f"{provider}:{provider_reference}")

    @classmethod
    def link(
        cls,
        *,
        provider: str,
        provider_reference: str,
        transaction_id: UUID,
        actor: str,
        correlation_id: str,
    ) -> Self:
        _check_provider(provider)
        return cls(
            provider=provider,
            provider_reference=provider_reference,
            transaction_id=transaction_id,
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Linked)
    def __init__(
        self,
        *,
        provider: str,
        provider_reference: str,
        transaction_id: UUID,
        actor: str,
        correlation_id: str,
    ) -> None:
        self.provider = provider
        self.provider_reference = provider_reference
        self.transaction_id = transaction_id
