"""The payment-provider port: what the commands need from Stripe (or any provider)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from commands.errors import CommandError
from domain.money import Money

SUCCEEDED = "succeeded"
CANCELED = "canceled"
PROCESSING = "processing"


@dataclass(frozen=True)
class ProviderIntent:
    """A payment intent as the provider reports it.

    ``status`` uses Stripe's vocabulary (``requires_payment_method``, ``processing``,
    ``succeeded``, ``canceled``...); ``received`` is what was captured (zero until it succeeds).
    """

    reference: str
    client_secret: str
    status: str
    amount: Money
    received: Money
    metadata: Mapping[str, str] = field(default_factory=dict)
    failure_reason: str | None = None


class PaymentProvider(Protocol):
    """A payment provider. Every call that creates something takes an idempotency key derived
    from our ids, so a retried call (after a timeout, a crash, a repeated request) returns the
    first result instead of charging twice."""

    name: str

    def create_intent(
        self, *, transaction_id: UUID, order_id: UUID, amount: Money
    ) -> ProviderIntent:
        """Create (or, for the same ``transaction_id``, return again) the intent to pay
        ``amount``; ``transaction_id`` and ``order_id`` travel in its metadata."""
        ...

    def retrieve_intent(self, reference: str) -> ProviderIntent | None:
        """The intent ``reference``, or ``None`` when the provider has no such intent."""
        ...

    def cancel_intent(self, reference: str) -> ProviderIntent:
        """Cancel an intent that was never paid (raises if it can no longer be cancelled)."""
        ...

    def refund(self, *, reference: str, transaction_id: UUID) -> str:
        """Refund the intent in full; returns the provider's refund id (idempotent per
        transaction)."""
        ...


class PaymentProviderUnavailable(CommandError):
    """The payment provider cannot be reached (timeouts, 5xx, or the circuit breaker is open);
    nothing was charged by this call. Retry after ``retry_after_s`` seconds."""

    code = "payment_provider_unavailable"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PaymentProviderRejected(CommandError):
    """The payment provider refused the request (a 4xx other than rate limiting)."""

    code = "payment_provider_rejected"


class PaymentNotRefundable(CommandError):
    """The order has no captured payment to refund."""

    code = "payment_not_refundable"


class WebhookRejected(CommandError):
    """A signed webhook whose body is not an event (or not one we can apply)."""

    code = "webhook_rejected"


class WebhookUnsigned(WebhookRejected):
    """A webhook whose Stripe-Signature is missing, wrong or too old: nothing says it is
    Stripe's, so it is unauthenticated (the signature is its credential)."""

    challenge = 'Stripe-Signature realm="iconmarket"'
