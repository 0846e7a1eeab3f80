"""Paying and refunding an order: commands around the provider call, in a crash-safe order.

Paying appends the attempt first (``Order.PaymentStarted`` + ``Transaction.Started``), then asks
the provider for an intent with the transaction id as idempotency key, then records the intent.
A crash or an outage between the steps leaves a pending transaction that a retry of the same
request completes (same attempt, same key, so the same intent) or that reconciliation resolves.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from uuid import UUID

from commands import messages as m
from commands.bus import CommandBus
from commands.errors import CommandError
from commands.handlers.common import authorize
from commands.payments.port import (
    PaymentNotRefundable,
    PaymentProvider,
    PaymentProviderRejected,
    ProviderIntent,
)
from commands.policy import Action
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.errors import InvariantViolated
from domain.money import Money
from domain.order import Order
from domain.transaction import Transaction, TransactionStatus

log = logging.getLogger("iconmarket.payments")


@dataclass(frozen=True)
class PaymentOutcome:
    """What a payer needs: the intent's client secret (``None`` for a free order, which is
    complete already) and the position to read the order's new state at."""

    order_id: UUID
    transaction_id: UUID | None
    status: str
    amount: Money
    client_secret: str | None
    provider_reference: str | None
    position: int


@dataclass(frozen=True)
class RefundOutcome:
    order_id: UUID
    transaction_id: UUID
    refund_reference: str
    position: int


class PaymentService:
    """Drives the payment commands through ``bus`` and the provider."""

    def __init__(self, bus: CommandBus, provider: PaymentProvider) -> None:
        self.bus = bus
        self.provider = provider

    def pay(self, order_id: UUID, ctx: CommandContext) -> PaymentOutcome:
        started = self.bus.execute(
            m.StartPayment(order_id=order_id, provider=self.provider.name), ctx
        )
        commerce = self.bus.apps.commerce
        if started.aggregate_id == order_id:
            order = UnitOfWork.read(commerce, Order, order_id)
            return PaymentOutcome(
                order_id, None, order.status.value, order.total, None, None, started.position
            )
        transaction = UnitOfWork.read(commerce, Transaction, started.aggregate_id)
        intent, recorded_at = self._intent_for(transaction, ctx)
        return PaymentOutcome(
            order_id=order_id,
            transaction_id=transaction.id,
            status="payment_processing",
            amount=transaction.amount,
            client_secret=intent.client_secret,
            provider_reference=intent.reference,
            position=max(started.position, recorded_at),
        )

    def _intent_for(
        self, transaction: Transaction, ctx: CommandContext
    ) -> tuple[ProviderIntent, int]:
        """The attempt's intent: the recorded one, else a new one (the idempotency key makes a
        racing or retried creation return the same intent), then recorded; with the position
        of the recording (0 when nothing was recorded)."""
        if transaction.provider_reference is not None:
            return self._recorded_intent(transaction.provider_reference), 0
        intent = self.provider.create_intent(
            transaction_id=transaction.id, order_id=transaction.order_id, amount=transaction.amount
        )
        try:
            recorded = self.bus.execute(
                m.RecordPaymentIntent(
                    transaction_id=transaction.id, provider_reference=intent.reference
                ),
                dataclasses.replace(ctx, idempotency_key=None, expected_version=None),
            )
        except InvariantViolated:
            # Another request recorded a different intent first, which Stripe's idempotency
            # prevents for 24 hours; past that, this one is a spare: cancel it, use the first.
            self._cancel_spare(intent.reference)
            fresh = UnitOfWork.read(self.bus.apps.commerce, Transaction, transaction.id)
            assert fresh.provider_reference is not None
            return self._recorded_intent(fresh.provider_reference), 0
        return intent, recorded.position

    def _recorded_intent(self, reference: str) -> ProviderIntent:
        intent = self.provider.retrieve_intent(reference)
        if intent is None:
            raise PaymentProviderRejected(f"the provider has no intent {reference}")
        return intent

    def _cancel_spare(self, reference: str) -> None:
        try:
            self.provider.cancel_intent(reference)
        except CommandError as exc:
            log.warning("could not cancel a spare intent", extra={"error": exc.code})

    def refund(self, order_id: UUID, ctx: CommandContext, *, reason: str) -> RefundOutcome:
        """Refund the order's captured payment in full through the provider (administrators)."""
        authorize(ctx, Action.ORDER_REFUND, "order")
        commerce = self.bus.apps.commerce
        order = UnitOfWork.read(commerce, Order, order_id)
        if order.transaction_id is None:
            raise PaymentNotRefundable(f"order {order_id} has no payment to refund")
        transaction = UnitOfWork.read(commerce, Transaction, order.transaction_id)
        refundable = {TransactionStatus.SUCCEEDED, TransactionStatus.REFUNDED}
        if transaction.status not in refundable or transaction.provider_reference is None:
            raise PaymentNotRefundable(
                f"order {order_id}'s payment is {transaction.status.value}, not captured"
            )
        refund_reference = self.provider.refund(
            reference=transaction.provider_reference, transaction_id=transaction.id
        )
        recorded = self.bus.execute(
            m.RecordRefund(
                transaction_id=transaction.id,
                provider_reference=transaction.provider_reference,
                reason=reason,
            ),
            ctx,
        )
        return RefundOutcome(order_id, transaction.id, refund_reference, recorded.position)
