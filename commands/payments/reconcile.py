"""Reconciliation: ask the provider about payment attempts pending too long and record what
happened to them, so that no order stays in ``payment_processing`` after an outage or a crash.

| the provider says                         | recorded                                         |
| ----------------------------------------- | ------------------------------------------------ |
| no intent was ever recorded / none exists | the attempt failed (the payer never got a secret) |
| ``succeeded``                             | the capture is settled (the order is paid)       |
| ``canceled``                              | the attempt failed                               |
| ``processing``                            | nothing yet: asked again next time               |
| anything else (abandoned)                 | the intent is cancelled, then the attempt failed  |

A ``payment_intent.payment_failed`` webhook fails the attempt and cancels its intent once, best
effort; Stripe keeps a declined intent payable until it is cancelled. So each pass also looks
again at the intents of attempts failed by the provider (not by reconciliation, which cancels
or knows the intent gone before failing an attempt) until Stripe reports them cancelled:

| the provider says        | done                                                          |
| ------------------------ | ------------------------------------------------------------- |
| ``canceled`` / no intent | nothing more to do                                            |
| ``succeeded``            | a late capture: settled (pays the order, or is refunded)      |
| ``processing``           | asked again next time                                         |
| anything else            | the intent is cancelled (again next time if that fails)       |

The failed attempts to look at are kept in memory from the log: a new process (or each run of
the one-shot command) asks once about every attempt the provider ever failed.
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
from commands.log import pages_of
from commands.payments.orphans import refund_orphaned_capture
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
_FAILED = get_topic(Transaction.Failed)
_CLOSED = frozenset(
    get_topic(cls)
    for cls in (
        Transaction.Succeeded,
        Transaction.Failed,
        Transaction.Refunded,
        Transaction.Disputed,
    )
)
INTENT_NEVER_CREATED = "intent_never_created"
INTENT_MISSING = "intent_missing"
INTENT_CANCELED = "intent_canceled"
ABANDONED = "abandoned"
_OWN_FAILURES = frozenset({INTENT_NEVER_CREATED, INTENT_MISSING, INTENT_CANCELED, ABANDONED})


@dataclass
class PendingTransactions:
    """The transactions started and not yet settled, and those failed by the provider whose
    intent is not known to be cancelled (``to_cancel``), kept by tailing the commerce log's
    transaction events from ``position`` (so a long-running loop reads each event once)."""

    position: int = 0
    started_at: dict[UUID, dt.datetime] = field(default_factory=dict)
    to_cancel: set[UUID] = field(default_factory=set)
    to_refund: set[UUID] = field(default_factory=set)
    """Transactions whose resolution the provider's outage interrupted: a capture settled
    just before may still need its refund (``refund_orphaned_capture``)."""

    def refresh(self, bus: CommandBus) -> None:
        app = bus.apps.commerce
        topics = [_OPENED, *_CLOSED]
        for page in pages_of(app.recorder, after=self.position, page=PAGE, topics=topics):
            for notification in page:
                transaction_id = UUID(str(notification.originator_id))
                if notification.topic == _OPENED:
                    event = app.mapper.to_domain_event(notification)
                    assert isinstance(event, Transaction.Started)
                    self.started_at[transaction_id] = event.timestamp
                else:
                    self.started_at.pop(transaction_id, None)
                    self.to_cancel.discard(transaction_id)
                if notification.topic == _FAILED:
                    failed = app.mapper.to_domain_event(notification)
                    assert isinstance(failed, Transaction.Failed)
                    if failed.provider_reference and failed.reason not in _OWN_FAILURES:
                        self.to_cancel.add(transaction_id)
                self.position = notification.id

    def older_than(self, age: dt.timedelta, now: dt.datetime) -> list[UUID]:
        return sorted(tid for tid, at in self.started_at.items() if now - at >= age)


@dataclass
class ReconcileReport:
    checked: int = 0
    settled: int = 0
    failed: int = 0
    still_pending: int = 0
    unavailable: bool = False
    cancelled: int = 0
    """Intents of failed attempts cancelled by this pass (the webhook's cancel had failed)."""
    late_captures: int = 0
    """Intents of failed attempts found captured and settled by this pass."""


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
    if not _refund_interrupted(bus, provider, pending):
        report.unavailable = True
        return report
    for transaction_id in due:
        try:
            outcome = _resolve(bus, provider, transaction_id)
        except PaymentProviderUnavailable:
            pending.to_refund.add(transaction_id)
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
    if not report.unavailable:
        _cancel_failed_intents(bus, provider, pending, report)
    return report


def _refund_interrupted(
    bus: CommandBus, provider: PaymentProvider, pending: PendingTransactions
) -> bool:
    """Finish the refunds an outage interrupted; ``False`` when the provider is still down."""
    for transaction_id in sorted(pending.to_refund):
        try:
            refund_orphaned_capture(
                bus, provider, transaction_id, _context(transaction_id).correlation_id
            )
        except PaymentProviderUnavailable:
            return False
        pending.to_refund.discard(transaction_id)
    return True


def _cancel_failed_intents(
    bus: CommandBus,
    provider: PaymentProvider,
    pending: PendingTransactions,
    report: ReconcileReport,
) -> None:
    """Make sure the intent of every attempt the provider failed is cancelled (or, when it was
    captured after all, settled); an attempt is forgotten once that is known."""
    for transaction_id in sorted(pending.to_cancel):
        try:
            outcome = _cancel_failed_intent(bus, provider, transaction_id)
        except PaymentProviderUnavailable:
            pending.to_refund.add(transaction_id)
            report.unavailable = True
            return
        if outcome == "cancelled":
            report.cancelled += 1
        elif outcome == "settled":
            report.late_captures += 1
        if outcome != "pending":
            pending.to_cancel.discard(transaction_id)


def _cancel_failed_intent(bus: CommandBus, provider: PaymentProvider, transaction_id: UUID) -> str:
    transaction = UnitOfWork.read(bus.apps.commerce, Transaction, transaction_id)
    reference = transaction.provider_reference
    if transaction.status is not TransactionStatus.FAILED or reference is None:
        return "closed"
    intent = provider.retrieve_intent(reference)
    if intent is None or intent.status == CANCELED:
        return "closed"
    if intent.status == SUCCEEDED:
        return _settle(bus, provider, transaction_id, intent)
    if intent.status == PROCESSING:
        return "pending"
    try:
        provider.cancel_intent(reference)
    except PaymentProviderUnavailable:
        raise
    except CommandError:
        return "pending"  # paid a moment ago? look again next time
    return "cancelled"


def _resolve(bus: CommandBus, provider: PaymentProvider, transaction_id: UUID) -> str:
    transaction = UnitOfWork.read(bus.apps.commerce, Transaction, transaction_id)
    if transaction.status is not TransactionStatus.CREATED:
        return "closed"
    reference = transaction.provider_reference
    if reference is None:
        return _fail(bus, transaction_id, None, INTENT_NEVER_CREATED)
    intent = provider.retrieve_intent(reference)
    if intent is None:
        return _fail(bus, transaction_id, reference, INTENT_MISSING)
    return _by_status(bus, provider, transaction_id, intent)


def _by_status(
    bus: CommandBus, provider: PaymentProvider, transaction_id: UUID, intent: ProviderIntent
) -> str:
    if intent.status == SUCCEEDED:
        return _settle(bus, provider, transaction_id, intent)
    if intent.status == CANCELED:
        return _fail(bus, transaction_id, intent.reference, INTENT_CANCELED)
    if intent.status == PROCESSING:
        return "pending"
    try:
        provider.cancel_intent(intent.reference)
    except PaymentProviderUnavailable:
        raise
    except CommandError:
        return "pending"  # it moved on (paid a moment ago?): look again next time
    return _fail(bus, transaction_id, intent.reference, ABANDONED)


def _settle(
    bus: CommandBus, provider: PaymentProvider, transaction_id: UUID, intent: ProviderIntent
) -> str:
    """Settle a captured intent like the webhook would, refunding it when it pays no order."""
    captured = m.Money(amount_minor=intent.received.amount_minor, currency=intent.received.currency)
    context = _context(transaction_id)
    bus.execute(
        m.SettlePayment(
            transaction_id=transaction_id, provider_reference=intent.reference, captured=captured
        ),
        context,
    )
    refund_orphaned_capture(bus, provider, transaction_id, context.correlation_id)
    return "settled"


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
