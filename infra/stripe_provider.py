"""The Stripe adapter of the payment-provider port, its circuit breaker, and webhook checks.

Every call has a timeout and is retried by the ``stripe`` library (connection errors, 409, 5xx)
with the same idempotency key, so a retry never creates a second intent or refund. Consecutive
outages open the breaker: calls then fail at once with ``PaymentProviderUnavailable`` (503 with
Retry-After at the API) until a trial call after the cool-down succeeds.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import stripe

from commands.payments.port import (
    PaymentProviderRejected,
    PaymentProviderUnavailable,
    ProviderIntent,
    WebhookRejected,
    WebhookUnsigned,
)
from domain.money import Money
from infra.settings import Settings

T = TypeVar("T")


class CircuitBreaker:
    """Closed → (``failures`` consecutive outages) → open for ``cooldown_s`` → one trial call
    (half open) → closed on success, open again on failure. Thread-safe."""

    def __init__(
        self, *, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None

    def before_call(self) -> None:
        """Raise ``PaymentProviderUnavailable`` unless a call may go to the provider now."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self._clock() - self._opened_at
            if waited < self.cooldown_s or self._trial_running:
                retry_after = max(1, math.ceil(self.cooldown_s - waited))
                raise PaymentProviderUnavailable(
                    "the payment provider is unavailable (circuit open)", retry_after_s=retry_after
                )
            self._trial_running = True

    def succeeded(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._trial_running = False

    def failed(self) -> int:
        """Count an outage; returns the seconds a caller should wait before retrying."""
        with self._lock:
            self._consecutive += 1
            self._trial_running = False
            if self._opened_at is not None or self._consecutive >= self.failures:
                self._opened_at = self._clock()
                return max(1, math.ceil(self.cooldown_s))
            return 1


class StripePaymentProvider:
    """PaymentIntents and refunds on Stripe (or stripe-mock at ``stripe_api_base``)."""

    name = "stripe"

    def __init__(self, client: stripe.StripeClient, breaker: CircuitBreaker) -> None:
        self._client = client
        self.breaker = breaker

    def create_intent(
        self, *, transaction_id: UUID, order_id: UUID, amount: Money
    ) -> ProviderIntent:
        params: Any = {
            "amount": amount.amount_minor,
            "currency": amount.currency.lower(),
            "automatic_payment_methods": {"enabled": True},
            "metadata": {"transaction_id": str(transaction_id), "order_id": str(order_id)},
        }
        options: Any = {"idempotency_key": str(transaction_id)}
        intent = self._call(
            lambda: self._client.v1.payment_intents.create(params=params, options=options)
        )
        return _intent(intent)

    def retrieve_intent(self, reference: str) -> ProviderIntent | None:
        try:
            intent = self._call(lambda: self._client.v1.payment_intents.retrieve(reference))
        except _Missing:
            return None
        return _intent(intent)

    def cancel_intent(self, reference: str) -> ProviderIntent:
        return _intent(self._call(lambda: self._client.v1.payment_intents.cancel(reference)))

    def refund(self, *, reference: str, transaction_id: UUID) -> str:
        params: Any = {
            "payment_intent": reference,
            "metadata": {"transaction_id": str(transaction_id)},
        }
        options: Any = {"idempotency_key": f"refund:{transaction_id}"}
        refund = self._call(lambda: self._client.v1.refunds.create(params=params, options=options))
        return str(refund["id"])

    def _call(self, call: Callable[[], T]) -> T:
        self.breaker.before_call()
        try:
            result = call()
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise self._outage(exc) from None
        except stripe.StripeError as exc:
            if exc.http_status is None or exc.http_status >= 500:
                raise self._outage(exc) from None
            self.breaker.succeeded()  # it answered: the provider is up
            if exc.code == "resource_missing":
                raise _Missing() from None
            raise PaymentProviderRejected(
                f"Stripe refused the request ({exc.http_status} {exc.code or ''})".strip()
            ) from None
        self.breaker.succeeded()
        return result

    def _outage(self, exc: stripe.StripeError) -> PaymentProviderUnavailable:
        retry_after = self.breaker.failed()
        return PaymentProviderUnavailable(
            f"Stripe is unavailable: {type(exc).__name__}", retry_after_s=retry_after
        )


class _Missing(Exception):
    """Stripe has no such object (404 resource_missing)."""


def _intent(stripe_object: Any) -> ProviderIntent:
    intent: dict[str, Any] = stripe_object.to_dict()
    currency = str(intent["currency"]).upper()
    metadata = intent.get("metadata") or {}
    error = intent.get("last_payment_error") or {}
    return ProviderIntent(
        reference=str(intent["id"]),
        client_secret=str(intent.get("client_secret") or ""),
        status=str(intent["status"]),
        amount=Money(int(intent["amount"]), currency),
        received=Money(int(intent.get("amount_received") or 0), currency),
        metadata={str(k): str(v) for k, v in metadata.items()},
        failure_reason=error.get("code") if isinstance(error, dict) else None,
    )


def build_stripe_provider(
    settings: Settings, *, http_client: stripe.HTTPClient | None = None
) -> StripePaymentProvider:
    """The adapter for ``settings``: API base, key, timeout, retries and breaker."""
    client = stripe.StripeClient(
        settings.stripe_secret_key,
        base_addresses={"api": settings.stripe_api_base},
        max_network_retries=settings.stripe_max_retries,
        http_client=http_client or stripe.RequestsClient(timeout=settings.stripe_timeout_s),
    )
    breaker = CircuitBreaker(
        failures=settings.stripe_breaker_failures,
        cooldown_s=settings.stripe_breaker_cooldown_s,
    )
    return StripePaymentProvider(client, breaker)


def verify_webhook(payload: bytes, header: str | None, secret: str, tolerance_s: int) -> object:
    """The webhook's JSON document once its ``Stripe-Signature`` (``t=…,v1=…``, HMAC-SHA256 of
    ``"{t}.{payload}"`` with the endpoint secret) matches and ``t`` is within ``tolerance_s``;
    otherwise ``WebhookUnsigned`` (or ``WebhookRejected`` for a signed body that is not JSON)."""
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance_s)
    except UnicodeDecodeError:
        raise WebhookUnsigned("the webhook body is not UTF-8, so no signature can match") from None
    except stripe.SignatureVerificationError as exc:
        raise WebhookUnsigned(f"webhook signature refused: {exc.user_message}") from None
    try:
        document: object = json.loads(text)
    except ValueError:
        raise WebhookRejected("the webhook body is not JSON") from None
    return document
