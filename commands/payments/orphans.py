"""Refunding a capture that pays no order.

A failed attempt's intent may still be captured (Stripe keeps a declined intent payable until it
is cancelled). ``SettlePayment`` records such a late capture; when it cannot pay its order (a
newer attempt was started, the order was cancelled, or the amount does not match) the money was
taken for nothing, and ``refund_orphaned_capture`` gives it back through the provider and records
the refund. Should the provider refuse, the ``captured_after_failure`` alert stays for an
administrator to refund by hand (Stripe dashboard; the ``charge.refunded`` webhook then records
it).
"""

from __future__ import annotations

import logging
from uuid import UUID

from commands import messages as m
from commands.bus import CommandBus
from commands.payments.port import PaymentProvider, PaymentProviderRejected
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.order import Order, OrderStatus
from domain.transaction import Transaction, TransactionStatus

log = logging.getLogger("iconmarket.payments")

ORPHANED_CAPTURE_REASON = "captured for an attempt that no longer pays its order"
_UNPAYABLE = frozenset({OrderStatus.FAILED, OrderStatus.CANCELLED})


def is_orphaned_capture(bus: CommandBus, transaction_id: UUID) -> bool:
    """Whether ``transaction_id`` captured money that pays no order: it succeeded, and its order
    moved on to another attempt, or is still failed or cancelled with it as current attempt
    (a late capture with a mismatch, or on a cancelled order)."""
    commerce = bus.apps.commerce
    transaction = UnitOfWork.read(commerce, Transaction, transaction_id)
    if transaction.status is not TransactionStatus.SUCCEEDED:
        return False
    order = UnitOfWork.read(commerce, Order, transaction.order_id)
    return order.transaction_id != transaction.id or order.status in _UNPAYABLE


def refund_orphaned_capture(
    bus: CommandBus, provider: PaymentProvider, transaction_id: UUID, correlation_id: str
) -> bool:
    """Refund ``transaction_id``'s capture in full when it pays no order, then record
    ``Transaction.Refunded``; returns whether it did. The provider's refund is idempotent per
    transaction, so calling this again is harmless. ``PaymentProviderUnavailable`` propagates
    (the webhook answers 503 and Stripe redelivers it; reconciliation retries next pass)."""
    if not is_orphaned_capture(bus, transaction_id):
        return False
    transaction = UnitOfWork.read(bus.apps.commerce, Transaction, transaction_id)
    reference = transaction.provider_reference
    assert reference is not None  # a succeeded transaction names its intent
    try:
        provider.refund(reference=reference, transaction_id=transaction_id)
    except PaymentProviderRejected as exc:
        log.warning(
            "could not refund an orphaned capture; the alert stays for an administrator",
            extra={"transaction_id": str(transaction_id), "error": exc.code},
        )
        return False
    bus.execute(
        m.RecordRefund(
            transaction_id=transaction_id,
            provider_reference=reference,
            reason=ORPHANED_CAPTURE_REASON,
        ),
        CommandContext(
            actor="service:payments",
            roles=frozenset({"service"}),
            correlation_id=correlation_id,
        ),
    )
    return True
