"""Reconciliation: ask the provider about payment attempts pending too long and record what
happened to them, so that no order stays in ``payment_processing`` after an outage or a crash.

| the provider says                         | recorded                                         |
| ----------------------------------------- | ------------------------------------------------ |
| no intent was ever recorded / none exists | the attempt failed (the payer never got a secret) |
| ``succeeded``                             | the capture is settled (the order is paid)       |
| ``canceled``                              | the attempt failed                               |
| ``processing``                            | nothing yet: asked again next time               |
| anything else (abandoned)                 | the intent is cancelled, then the attempt failed  |
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.utils import get_topic

from commands import messages as m
from commands.bus import CommandBus
from commands.errors import CommandError
from commands.payments.port import (
    CANCELED,
    PROCESSING,
    SUCCEEDED,
    PaymentProvider,
    PaymentProviderUnavailable,
    ProviderIntent,
)
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.transaction import Transaction, TransactionStatus

RECONCILE_ACTOR = "service:payments"
PAGE = 1000
_OPENED = get_topic(Transaction.Started)
_CLOSED = frozenset(
    get_topic(cls)
    for cls in (
        Transaction.Succeeded,
        Transaction.Failed,
        Transaction.Refunded,
        Transaction.Disputed,
    )
)


@dataclass
class PendingTransactions:
    """The transactions started and not yet settled, kept by tailing the commerce log's
    transaction events from ``position`` (so a long-running loop reads each event once)."""

    position: int = 0
    started_at: dict[UUID, dt.datetime] = field(default_factory=dict)

    def refresh(self, bus: CommandBus) -> None:
        app = bus.apps.commerce
        topics = [_OPENED, *_CLOSED]
        while True:
            page = app.recorder.select_notifications(self.position + 1, limit=PAGE, topics=topics)
            for notification in page:
                transaction_id = UUID(str(notification.originator_id))
                if notification.topic == _OPENED:
                    event = app.mapper.to_domain_event(notification)
                    assert isinstance(event, Transaction.Started)
                    self.started_at[transaction_id] = event.timestamp
                else:
                    self.started_at.pop(transaction_id, None)
                self.position = notification.id
            if len(page) < PAGE:
                return

    def older_than(self, age: dt.timedelta, now: dt.datetime) -> list[UUID]:
        return sorted(tid for tid, at in self.started_at.items() if now - at >= age)


@dataclass
class ReconcileReport:
    checked: int = 0
    settled: int = 0
    failed: int = 0
    still_pending: int = 0
    unavailable: bool = False


def reconcile(
    bus: CommandBus,
    provider: PaymentProvider,
    pending: PendingTransactions,
    *,
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    advance: Callable[[int], None] = lambda _total: None,
) -> ReconcileReport:
    """Resolve every transaction pending longer than ``older_than``; ``advance(total)`` is
    called once per transaction looked at (for a progress bar). Stops early, with
    ``unavailable`` set, when the provider is down: the rest waits for the next run."""
    pending.refresh(bus)
    due = pending.older_than(older_than, now or dt.datetime.now(dt.UTC))
    report = ReconcileReport()
    for transaction_id in due:
        try:
            outcome = _resolve(bus, provider, transaction_id)
        except PaymentProviderUnavailable:
            report.unavailable = True
            break
        report.checked += 1
        if outcome == "settled":
            report.settled += 1
        elif outcome == "failed":
            report.failed += 1
        elif outcome == "pending":
            report.still_pending += 1
        advance(len(due))
    return report


def _resolve(bus: CommandBus, provider: PaymentProvider, transaction_id: UUID) -> str:
    transaction = UnitOfWork.read(bus.apps.commerce, Transaction, transaction_id)
    if transaction.status is not TransactionStatus.CREATED:
        return "closed"
    reference = transaction.provider_reference
    if reference is None:
        return _fail(bus, transaction_id, None, "intent_never_created")
    intent = provider.retrieve_intent(reference)
    if intent is None:
        return _fail(bus, transaction_id, reference, "intent_missing")
    return _by_status(bus, provider, transaction_id, intent)


def _by_status(
    bus: CommandBus, provider: PaymentProvider, transaction_id: UUID, intent: ProviderIntent
) -> str:
    if intent.status == SUCCEEDED:
        captured = m.Money(
            amount_minor=intent.received.amount_minor, currency=intent.received.currency
        )
        bus.execute(
            m.SettlePayment(
                transaction_id=transaction_id,
                provider_reference=intent.reference,
                captured=captured,
            ),
            _context(transaction_id),
        )
        return "settled"
    if intent.status == CANCELED:
        return _fail(bus, transaction_id, intent.reference, "intent_canceled")
    if intent.status == PROCESSING:
        return "pending"
    try:
        provider.cancel_intent(intent.reference)
    except PaymentProviderUnavailable:
        raise
    except CommandError:
        return "pending"  # it moved on (paid a moment ago?): look again next time
    return _fail(bus, transaction_id, intent.reference, "abandoned")


def _fail(bus: CommandBus, transaction_id: UUID, reference: str | None, reason: str) -> str:
    bus.execute(
        m.FailPayment(transaction_id=transaction_id, provider_reference=reference, reason=reason),
        _context(transaction_id),
    )
    return "failed"


def _context(transaction_id: UUID) -> CommandContext:
    return CommandContext(
        actor=RECONCILE_ACTOR,
        roles=frozenset({"service"}),
        correlation_id=f"reconcile:{transaction_id}:{uuid.uuid4().hex[:8]}",
    )
