"""Handlers of the payment commands (commerce context): a transaction, its order and the
customer's library change together, in one unit of work.

Provider outcomes arrive at least once and in any order. A handler changes nothing when the
transaction has already left the state the outcome applies to, so a replayed or late webhook
never un-pays an order and never grants twice.
"""

from __future__ import annotations

from uuid import UUID

from commands import messages as m
from commands.errors import AggregateNotFound
from commands.handlers.common import authorize, open_library, trace
from commands.handlers.grants import icons_to_grant
from commands.policy import Action
from commands.results import CommandContext
from commands.unit_of_work import UnitOfWork
from domain.library import Library
from domain.money import Money
from domain.order import Order, OrderStatus
from domain.transaction import PaymentIntentLink, Transaction, TransactionStatus

DEFAULT_PROVIDER = "stripe"
CAPTURED_AFTER_FAILURE = "captured_after_failure"
CAPTURED_FOR_STALE_ATTEMPT = "captured_for_stale_attempt"


def start_payment(cmd: m.StartPayment, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    """Returns the attempt's transaction id, or the order id when a free order was completed."""
    order = uow.get(Order, cmd.order_id, expected_version=ctx.expected_version)
    authorize(ctx, Action.ORDER_PAY, "order", order.customer_id)
    if order.status is OrderStatus.PAYMENT_PROCESSING and order.transaction_id is not None:
        return uow.get(Transaction, order.transaction_id).id
    if order.total.is_zero:
        order.mark_paid(transaction_id=None, **trace(ctx))
        _grant(uow, order, ctx)
        return order.id
    transaction_id = order.start_payment(**trace(ctx))
    transaction = Transaction.start(
        order_id=order.id,
        attempt=order.payment_attempts,
        amount=order.total,
        provider=cmd.provider,
        **trace(ctx),
    )
    assert transaction.id == transaction_id
    return uow.add(transaction).id


def record_payment_intent(cmd: m.RecordPaymentIntent, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    transaction = uow.get(Transaction, cmd.transaction_id)
    order = uow.read(uow.app, Order, transaction.order_id)
    authorize(ctx, Action.ORDER_PAY, "order", order.customer_id)
    if transaction.record_intent(provider_reference=cmd.provider_reference, **trace(ctx)):
        _link(uow, transaction, cmd.provider_reference, ctx)
    return transaction.id


def settle_payment(cmd: m.SettlePayment, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    authorize(ctx, Action.PAYMENT_RECORD, "transaction")
    transaction = _transaction(uow, cmd.transaction_id, cmd.provider_reference)
    captured = Money(cmd.captured.amount_minor, cmd.captured.currency)
    if transaction.status is TransactionStatus.FAILED:
        return _settle_late(uow, transaction, cmd.provider_reference, captured, ctx)
    if transaction.status is not TransactionStatus.CREATED:
        return transaction.id
    _record_capture(uow, transaction, cmd.provider_reference, captured, ctx)
    if transaction.has_mismatch:
        return transaction.id
    order = uow.get(Order, transaction.order_id)
    if order.transaction_id != transaction.id or not order.can_transition_to(OrderStatus.PAID):
        transaction.raise_alert(
            alert=CAPTURED_FOR_STALE_ATTEMPT,
            detail=f"order {order.id} is {order.status.value} on attempt "
            f"{order.payment_attempts}; refund this capture",
            **trace(ctx),
        )
        return transaction.id
    order.mark_paid(transaction_id=transaction.id, **trace(ctx))
    _grant(uow, order, ctx)
    return transaction.id


def _settle_late(
    uow: UnitOfWork,
    transaction: Transaction,
    provider_reference: str,
    captured: Money,
    ctx: CommandContext,
) -> UUID:
    """A capture on an attempt that had failed (Stripe keeps a declined intent payable until it
    is cancelled). The money was taken: the capture is recorded with a
    ``captured_after_failure`` alert. When the attempt is still the order's current one and the
    order still failed, the capture pays, grants and fulfils the order; otherwise (a newer
    attempt was started, the order was cancelled) it pays nothing and must be refunded, which
    ``refund_orphaned_capture`` does right after this command."""
    order = uow.get(Order, transaction.order_id)
    pays_order = order.transaction_id == transaction.id and order.status is OrderStatus.FAILED
    transaction.succeed(provider_reference=provider_reference, captured=captured, **trace(ctx))
    _link(uow, transaction, provider_reference, ctx)  # a failure may have named it unlinked
    outcome = (
        "it pays the order"
        if pays_order and not transaction.has_mismatch
        else f"order {order.id} is {order.status.value} on attempt {order.payment_attempts}; "
        "refund it"
    )
    transaction.raise_alert(
        alert=CAPTURED_AFTER_FAILURE,
        detail=f"{captured.amount_minor} {captured.currency} captured by intent "
        f"{provider_reference} after the attempt failed; {outcome}",
        **trace(ctx),
    )
    if pays_order and not transaction.has_mismatch:
        order.mark_paid(transaction_id=transaction.id, **trace(ctx))
        _grant(uow, order, ctx)
    return transaction.id


def _record_capture(
    uow: UnitOfWork,
    transaction: Transaction,
    provider_reference: str,
    captured: Money,
    ctx: CommandContext,
) -> None:
    had_reference = transaction.provider_reference is not None
    transaction.succeed(provider_reference=provider_reference, captured=captured, **trace(ctx))
    if not had_reference:
        _link(uow, transaction, provider_reference, ctx)


def fail_payment(cmd: m.FailPayment, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    authorize(ctx, Action.PAYMENT_RECORD, "transaction")
    transaction = _transaction(uow, cmd.transaction_id, cmd.provider_reference)
    if transaction.status is not TransactionStatus.CREATED:
        return transaction.id  # late or repeated: a settled attempt stays settled
    transaction.fail(provider_reference=cmd.provider_reference, reason=cmd.reason, **trace(ctx))
    order = uow.get(Order, transaction.order_id)
    if order.transaction_id == transaction.id and order.can_transition_to(OrderStatus.FAILED):
        order.mark_failed(transaction_id=transaction.id, reason=cmd.reason, **trace(ctx))
    return transaction.id


def record_refund(cmd: m.RecordRefund, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    authorize(ctx, Action.PAYMENT_RECORD, "transaction")
    transaction = _transaction(uow, cmd.transaction_id, cmd.provider_reference)
    if transaction.status is not TransactionStatus.SUCCEEDED:
        return transaction.id
    transaction.refund(reason=cmd.reason, **trace(ctx))
    _reverse_order(uow, transaction, f"refunded: {cmd.reason}", ctx)
    return transaction.id


def record_dispute(cmd: m.RecordDispute, uow: UnitOfWork, ctx: CommandContext) -> UUID:
    authorize(ctx, Action.PAYMENT_RECORD, "transaction")
    transaction = _transaction(uow, cmd.transaction_id, cmd.provider_reference)
    if transaction.status is not TransactionStatus.SUCCEEDED:
        return transaction.id
    transaction.dispute(reason=cmd.reason, **trace(ctx))
    _reverse_order(uow, transaction, f"disputed: {cmd.reason}", ctx)
    return transaction.id


def _reverse_order(
    uow: UnitOfWork, transaction: Transaction, reason: str, ctx: CommandContext
) -> None:
    """The money went back: the order is refunded (or, when a mismatched capture never paid it,
    failed so that a new attempt may pay it) and what it granted is revoked."""
    order = uow.get(Order, transaction.order_id)
    if order.transaction_id != transaction.id:
        return
    if order.can_transition_to(OrderStatus.REFUNDED):
        order.refund(reason=reason, **trace(ctx))
    elif order.status is OrderStatus.PAYMENT_PROCESSING:
        order.mark_failed(transaction_id=transaction.id, reason=reason, **trace(ctx))
    library_id = Library.create_id(order.customer_id)
    if uow.exists(library_id):
        library = uow.get(Library, library_id)
        if library.has_active_grant(order.id):
            library.revoke(order_id=order.id, reason=reason, **trace(ctx))


def _grant(uow: UnitOfWork, order: Order, ctx: CommandContext) -> None:
    """Grants what a paid order bought (icon lines and the sellable icons of its set lines,
    see ``icons_to_grant``) and fulfils it. An order whose sets have no sellable icon left
    grants what exists, possibly nothing, and is fulfilled all the same (docs/payments.md)."""
    icons = icons_to_grant(uow, order)
    if icons:
        library = open_library(uow, order.customer_id, ctx)
        library.grant(order_id=order.id, icons=icons, **trace(ctx))
    order.fulfil(**trace(ctx))


def _link(
    uow: UnitOfWork, transaction: Transaction, provider_reference: str, ctx: CommandContext
) -> None:
    link_id = PaymentIntentLink.create_id(transaction.provider, provider_reference)
    if not uow.exists(link_id):
        uow.add(
            PaymentIntentLink.link(
                provider=transaction.provider,
                provider_reference=provider_reference,
                transaction_id=transaction.id,
                **trace(ctx),
            )
        )


def _transaction(
    uow: UnitOfWork, transaction_id: UUID | None, provider_reference: str | None
) -> Transaction:
    """The transaction named by id (from the intent's metadata), else found by its intent."""
    if transaction_id is None:
        if provider_reference is None:
            raise AggregateNotFound("neither a transaction id nor a payment intent was given")
        link_id = PaymentIntentLink.create_id(DEFAULT_PROVIDER, provider_reference)
        try:
            link = uow.read(uow.app, PaymentIntentLink, link_id)
        except AggregateNotFound:
            raise AggregateNotFound(f"no transaction has intent {provider_reference}") from None
        transaction_id = link.transaction_id
    return uow.get(Transaction, transaction_id)
