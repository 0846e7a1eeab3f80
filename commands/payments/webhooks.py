"""From a verified provider event (Stripe's JSON) to the payment command it means.

The event's object carries our ids in ``metadata`` (set when the intent was created; Stripe
copies it to the charge). Disputes name only the intent, which the handlers resolve through
``PaymentIntentLink``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands import messages as m
from commands.bus import CommandBus
from commands.errors import AggregateNotFound, CommandError
from commands.payments.orphans import refund_orphaned_capture
from commands.payments.port import PaymentProvider, WebhookRejected
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.transaction import Transaction, TransactionStatus

log = logging.getLogger("iconmarket.payments")


@dataclass(frozen=True)
class ProviderEvent:
    id: str
    type: str
    object: Mapping[str, Any]


def parse_event(document: object) -> ProviderEvent:
    """The event's id, type and object, or ``WebhookRejected`` when it is not an event."""
    if not isinstance(document, dict):
        raise WebhookRejected("the webhook body is not a JSON object")
    event_id, kind, data = document.get("id"), document.get("type"), document.get("data")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        raise WebhookRejected("the webhook body has no event id and type")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WebhookRejected("the webhook body has no data.object")
    return ProviderEvent(event_id, kind, data["object"])


def command_for(event: ProviderEvent) -> object | None:
    """The command to run, or ``None`` for an event this service does not act on (a partial
    refund, an event type not handled, an object that is not ours)."""
    build = _BUILDERS.get(event.type)
    return None if build is None else build(event.object)


def _succeeded(obj: Mapping[str, Any]) -> object | None:
    transaction_id = _transaction_id(obj.get("metadata"))
    if transaction_id is None:
        return None
    return m.SettlePayment(
        transaction_id=transaction_id,
        provider_reference=_object_id(obj),
        captured=_money(obj, "amount_received"),
    )


def _payment_failed(obj: Mapping[str, Any]) -> object | None:
    transaction_id = _transaction_id(obj.get("metadata"))
    if transaction_id is None:
        return None
    error = obj.get("last_payment_error")
    if not isinstance(error, dict):
        error = {}
    reason = error.get("decline_code") or error.get("code") or "payment_failed"
    return m.FailPayment(
        transaction_id=transaction_id, provider_reference=_object_id(obj), reason=str(reason)
    )


def _charge_refunded(obj: Mapping[str, Any]) -> object | None:
    transaction_id, reference = _transaction_id(obj.get("metadata")), _intent_of(obj)
    if obj.get("refunded") is not True or (transaction_id is None and reference is None):
        return None  # a partial refund keeps the order paid
    return m.RecordRefund(
        transaction_id=transaction_id, provider_reference=reference, reason="charge refunded"
    )


def _dispute_created(obj: Mapping[str, Any]) -> object | None:
    transaction_id, reference = _transaction_id(obj.get("metadata")), _intent_of(obj)
    if transaction_id is None and reference is None:
        return None
    return m.RecordDispute(
        transaction_id=transaction_id,
        provider_reference=reference,
        reason=str(obj.get("reason") or "disputed"),
    )


_BUILDERS: Mapping[str, Callable[[Mapping[str, Any]], object | None]] = {
    "payment_intent.succeeded": _succeeded,
    "payment_intent.payment_failed": _payment_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
}
HANDLED = frozenset(_BUILDERS)


def _object_id(obj: Mapping[str, Any]) -> str:
    object_id = obj.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise WebhookRejected("the event's object has no id")
    return object_id


def _intent_of(obj: Mapping[str, Any]) -> str | None:
    intent = obj.get("payment_intent")
    return intent if isinstance(intent, str) and intent else None


def _transaction_id(metadata: object) -> UUID | None:
    if not isinstance(metadata, dict):
        return None
    try:
        return UUID(str(metadata["transaction_id"]))
    except (KeyError, ValueError):
        return None


def _money(obj: Mapping[str, Any], amount_field: str) -> m.Money:
    amount, currency = obj.get(amount_field), obj.get("currency")
    if type(amount) is not int or not isinstance(currency, str):
        raise WebhookRejected(f"the payment intent has no integer {amount_field} and currency")
    return m.Money(amount_minor=amount, currency=currency.upper())


STRIPE_SERVICE_ACTOR = "service:stripe"


@dataclass(frozen=True)
class WebhookOutcome:
    """``applied`` (the command ran; it may have changed nothing for a late event),
    ``duplicate`` (this event id was applied before: nothing appended) or ``ignored``."""

    event_id: str
    type: str
    outcome: str
    position: int | None


def handle_event(
    bus: CommandBus, provider: PaymentProvider, event: ProviderEvent
) -> WebhookOutcome:
    """Run the event's command once per event id (the bus's idempotency key is the event id)."""
    command = command_for(event)
    if command is None:
        return WebhookOutcome(event.id, event.type, "ignored", None)
    ctx = CommandContext(
        actor=STRIPE_SERVICE_ACTOR,
        roles=frozenset({"service"}),
        correlation_id=f"stripe:{event.id}",
        idempotency_key=event.id,
    )
    try:
        result = bus.execute(command, ctx)
    except AggregateNotFound:
        log.warning("webhook for an unknown transaction", extra={"event_id": event.id})
        return WebhookOutcome(event.id, event.type, "ignored", None)
    if isinstance(command, m.FailPayment) and not result.replayed:
        _cancel_failed_intent(bus, provider, result.aggregate_id)
    if isinstance(command, m.SettlePayment):
        # Also on a redelivery: a refund the provider could not make the first time (503,
        # so Stripe redelivers the event) is made now.
        refund_orphaned_capture(bus, provider, result.aggregate_id, ctx.correlation_id)
    return WebhookOutcome(
        event.id, event.type, "duplicate" if result.replayed else "applied", result.position
    )


def _cancel_failed_intent(bus: CommandBus, provider: PaymentProvider, transaction_id: UUID) -> None:
    """A failed attempt's intent is cancelled so that it cannot be paid later: the customer pays
    through a new attempt. Best effort: when the cancel fails, reconciliation retries it, and a
    capture that still happens pays the order if no newer attempt was started (else it is
    refunded, see ``commands.payments.orphans``)."""
    transaction = UnitOfWork.read(bus.apps.commerce, Transaction, transaction_id)
    if transaction.status is not TransactionStatus.FAILED or not transaction.provider_reference:
        return
    try:
        provider.cancel_intent(transaction.provider_reference)
    except CommandError as exc:
        log.warning(
            "could not cancel a failed intent",
            extra={"transaction_id": str(transaction_id), "error": exc.code},
        )
