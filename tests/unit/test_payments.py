"""The payment flow on the in-memory store with the fake provider: attempts, webhooks,
refunds, disputes and reconciliation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest

from commands import messages as m
from commands.applications import Applications, build_applications
from commands.bus import CommandBus
from commands.errors import AccessDenied
from commands.payments.port import (
    PaymentNotRefundable,
    PaymentProviderUnavailable,
    WebhookRejected,
)
from commands.payments.reconcile import PendingTransactions, reconcile
from commands.payments.service import PaymentService
from commands.payments.webhooks import ProviderEvent, command_for, handle_event, parse_event
from commands.routes import ROUTES
from commands.unit_of_work import UnitOfWork
from domain.errors import IllegalTransition
from domain.library import Library
from domain.money import Money
from domain.order import Order, OrderStatus
from domain.transaction import Transaction, TransactionStatus
from infra.stripe_provider import CircuitBreaker
from tests.fakes.payment_provider import FakePaymentProvider
from tests.support import ctx, log_heads, published_catalog

CUSTOMER = "cust-1"


@dataclass
class World:
    apps: Applications
    bus: CommandBus
    provider: FakePaymentProvider
    payments: PaymentService
    icon_ids: tuple[UUID, ...]

    def order(self, *prices_index: int) -> UUID:
        who = ctx(CUSTOMER, "customer")
        cart_id = self.bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
        for index in prices_index:
            icon_id = self.icon_ids[index]
            self.bus.execute(
                m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who
            )
        return self.bus.execute(m.CheckOut(cart_id=cart_id), who).aggregate_id

    def get_order(self, order_id: UUID) -> Order:
        return UnitOfWork.read(self.apps.commerce, Order, order_id)

    def get_transaction(self, transaction_id: UUID) -> Transaction:
        return UnitOfWork.read(self.apps.commerce, Transaction, transaction_id)

    def library(self) -> Library:
        return UnitOfWork.read(self.apps.commerce, Library, Library.create_id(CUSTOMER))

    def events(self, heads: dict[str, int]) -> list[str]:
        notifications = self.apps.commerce.recorder.select_notifications(
            heads["commerce"] + 1, limit=1000
        )
        return [n.topic.split(":")[1] for n in notifications]


@pytest.fixture
def world() -> Iterator[World]:
    apps = build_applications(None)
    bus = CommandBus(apps, ROUTES)
    catalog = published_catalog(bus, "owner-1", prices=(500, 0, 250))
    provider = FakePaymentProvider()
    yield World(apps, bus, provider, PaymentService(bus, provider), catalog.icon_ids)
    apps.close()


def _intent_event(
    world: World, event_id: str, kind: str, reference: str, **fields: object
) -> ProviderEvent:
    intent = world.provider.intents[reference]
    obj: dict[str, object] = {
        "id": reference,
        "amount": intent.amount.amount_minor,
        "amount_received": intent.amount.amount_minor,
        "currency": intent.amount.currency.lower(),
        "metadata": dict(intent.metadata),
        **fields,
    }
    return ProviderEvent(event_id, kind, obj)


def test_paying_opens_one_attempt_and_a_repeat_returns_the_same_intent(world: World) -> None:
    order_id = world.order(0, 2)
    who = ctx(CUSTOMER, "customer")
    first = world.payments.pay(order_id, who)
    heads = log_heads(world.apps)
    again = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))

    assert first.amount == Money(750, "USD")
    assert first.client_secret == "pi_fake_1_secret_fake"
    assert again.client_secret == first.client_secret
    assert again.transaction_id == first.transaction_id
    assert world.events(heads) == []
    assert world.provider.calls == [
        ("create_intent", str(first.transaction_id)),
        ("retrieve_intent", "pi_fake_1"),
    ]
    assert world.get_order(order_id).status is OrderStatus.PAYMENT_PROCESSING
    transaction = world.get_transaction(first.transaction_id or order_id)
    assert transaction.provider_reference == "pi_fake_1"


def test_only_the_owner_may_pay(world: World) -> None:
    order_id = world.order(0)
    heads = log_heads(world.apps)
    with pytest.raises(AccessDenied):
        world.payments.pay(order_id, ctx("someone-else", "customer"))
    assert world.events(heads) == []
    assert world.provider.calls == []


def test_a_free_order_completes_without_the_provider(world: World) -> None:
    order_id = world.order(1)
    outcome = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert (outcome.status, outcome.client_secret, outcome.transaction_id) == (
        "fulfilled",
        None,
        None,
    )
    assert world.provider.calls == []
    assert world.library().is_entitled(world.icon_ids[1])


def test_success_pays_grants_and_a_replay_appends_nothing(world: World) -> None:
    order_id = world.order(0)
    outcome = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    event = _intent_event(world, "evt_1", "payment_intent.succeeded", "pi_fake_1")
    heads = log_heads(world.apps)
    applied = handle_event(world.bus, world.provider, event)
    assert applied.outcome == "applied"
    assert world.events(heads) == [
        "Transaction.Succeeded",
        "Order.Paid",
        "Order.Fulfilled",
        "Library.Opened",
        "Library.EntitlementsGranted",
    ]
    heads = log_heads(world.apps)
    duplicate = handle_event(world.bus, world.provider, event)
    assert (duplicate.outcome, duplicate.position) == ("duplicate", applied.position)
    assert applied.position == heads["commerce"]  # the command's last event, not its first
    failed = _intent_event(world, "evt_2", "payment_intent.payment_failed", "pi_fake_1")
    assert handle_event(world.bus, world.provider, failed).outcome == "applied"
    assert world.events(heads) == []
    assert world.get_order(order_id).status is OrderStatus.FULFILLED
    assert world.library().is_entitled(world.icon_ids[0])
    assert outcome.transaction_id is not None


def test_a_mismatched_capture_raises_an_alert_and_does_not_pay(world: World) -> None:
    order_id = world.order(0)
    world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    event = _intent_event(
        world, "evt_1", "payment_intent.succeeded", "pi_fake_1", amount_received=400
    )
    heads = log_heads(world.apps)
    handle_event(world.bus, world.provider, event)
    assert world.events(heads) == ["Transaction.Succeeded", "Transaction.AlertRaised"]
    order = world.get_order(order_id)
    assert order.status is OrderStatus.PAYMENT_PROCESSING
    transaction = world.get_transaction(order.transaction_id or order_id)
    assert transaction.alerts == ("payment_mismatch",)
    assert [m.value for m in transaction.mismatches] == ["amount"]


def test_a_failure_allows_a_new_attempt_and_cancels_the_intent(world: World) -> None:
    order_id = world.order(0)
    first = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    failed = _intent_event(
        world,
        "evt_1",
        "payment_intent.payment_failed",
        "pi_fake_1",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"},
    )
    handle_event(world.bus, world.provider, failed)
    assert world.get_order(order_id).status is OrderStatus.FAILED
    assert world.provider.intents["pi_fake_1"].status == "canceled"
    second = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert second.transaction_id != first.transaction_id
    assert second.client_secret == "pi_fake_2_secret_fake"
    assert world.get_transaction(first.transaction_id or order_id).failure_reason == (
        "insufficient_funds"
    )


def test_admin_refund_revokes_and_others_may_not(world: World) -> None:
    order_id = world.order(0)
    world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    handle_event(
        world.bus,
        world.provider,
        _intent_event(world, "evt_1", "payment_intent.succeeded", "pi_fake_1"),
    )
    with pytest.raises(AccessDenied):
        world.payments.refund(order_id, ctx(CUSTOMER, "customer"), reason="please")
    assert ("refund", "pi_fake_1") not in world.provider.calls
    outcome = world.payments.refund(order_id, ctx("admin-1", "admin"), reason="goodwill")
    assert outcome.refund_reference.startswith("re_fake_")
    assert world.get_order(order_id).status is OrderStatus.REFUNDED
    assert world.library().is_entitled(world.icon_ids[0]) is False
    heads = log_heads(world.apps)
    charge = ProviderEvent(
        "evt_2",
        "charge.refunded",
        {"id": "ch_1", "payment_intent": "pi_fake_1", "refunded": True, "metadata": {}},
    )
    assert handle_event(world.bus, world.provider, charge).outcome == "applied"
    assert world.events(heads) == []


def test_refusing_a_refund_of_an_unpaid_order(world: World) -> None:
    order_id = world.order(0)
    world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    with pytest.raises(PaymentNotRefundable):
        world.payments.refund(order_id, ctx("admin-1", "admin"), reason="x")


def test_a_dispute_found_by_its_intent_revokes(world: World) -> None:
    order_id = world.order(0)
    world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    handle_event(
        world.bus,
        world.provider,
        _intent_event(world, "evt_1", "payment_intent.succeeded", "pi_fake_1"),
    )
    dispute = ProviderEvent(
        "evt_2",
        "charge.dispute.created",
        {"id": "dp_1", "payment_intent": "pi_fake_1", "reason": "fraudulent", "metadata": {}},
    )
    heads = log_heads(world.apps)
    handle_event(world.bus, world.provider, dispute)
    assert world.events(heads) == [
        "Transaction.Disputed",
        "Order.Refunded",
        "Library.EntitlementsRevoked",
    ]


def test_a_malformed_event_object_is_rejected() -> None:
    metadata = {"transaction_id": str(UUID(int=1))}
    no_id = ProviderEvent("e", "payment_intent.succeeded", {"metadata": metadata})
    no_amount = ProviderEvent(
        "e", "payment_intent.succeeded", {"id": "pi_1", "metadata": metadata, "currency": "usd"}
    )
    for event in (no_id, no_amount):
        with pytest.raises(WebhookRejected):
            command_for(event)
    odd_error = ProviderEvent(
        "e",
        "payment_intent.payment_failed",
        {"id": "pi_1", "metadata": metadata, "last_payment_error": "boom"},
    )
    assert command_for(odd_error) == m.FailPayment(
        transaction_id=UUID(int=1), provider_reference="pi_1", reason="payment_failed"
    )
    with pytest.raises(WebhookRejected):
        parse_event({"id": "evt_1", "type": "x", "data": {}})


def test_events_not_acted_on() -> None:
    partial = ProviderEvent("e", "charge.refunded", {"payment_intent": "pi_1", "refunded": False})
    foreign = ProviderEvent("e", "payment_intent.succeeded", {"id": "pi_1", "metadata": {}})
    other = ProviderEvent("e", "customer.created", {"id": "cus_1"})
    assert [command_for(e) for e in (partial, foreign, other)] == [None, None, None]


def test_reconcile_resolves_each_kind_of_pending_attempt(world: World) -> None:
    never = world.order(0)
    world.bus.execute(m.StartPayment(order_id=never), ctx(CUSTOMER, "customer"))
    paid = world.order(2)
    world.payments.pay(paid, ctx(CUSTOMER, "customer"))
    world.provider.settle("pi_fake_1")
    abandoned = world.order(0, 2)
    world.payments.pay(abandoned, ctx(CUSTOMER, "customer"))
    fresh = world.order(0)
    world.payments.pay(fresh, ctx(CUSTOMER, "customer"))
    pending = PendingTransactions()
    now = dt.datetime.now(dt.UTC)

    report = reconcile(
        world.bus, world.provider, pending, older_than=dt.timedelta(seconds=0), now=now
    )

    assert (report.checked, report.settled, report.failed) == (4, 1, 3)
    assert world.get_order(never).status is OrderStatus.FAILED
    assert world.get_order(paid).status is OrderStatus.FULFILLED
    assert world.get_order(abandoned).status is OrderStatus.FAILED
    assert world.provider.intents["pi_fake_2"].status == "canceled"
    assert world.get_order(fresh).status is OrderStatus.FAILED  # abandoned too, at age 0
    later = reconcile(world.bus, world.provider, pending, older_than=dt.timedelta(0))
    assert later.checked == 0
    assert pending.started_at == {}


def test_reconcile_waits_for_young_attempts_and_stops_when_the_provider_is_down(
    world: World,
) -> None:
    order_id = world.order(0)
    outcome = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    pending = PendingTransactions()
    young = reconcile(world.bus, world.provider, pending, older_than=dt.timedelta(hours=1))
    assert young.checked == 0
    world.provider.down = True
    down = reconcile(world.bus, world.provider, pending, older_than=dt.timedelta(0))
    assert (down.checked, down.unavailable) == (0, True)
    assert world.get_transaction(outcome.transaction_id or order_id).status is (
        TransactionStatus.CREATED
    )


def test_paying_while_the_provider_is_down_leaves_a_pending_attempt_a_retry_completes(
    world: World,
) -> None:
    order_id = world.order(0)
    world.provider.down = True
    with pytest.raises(PaymentProviderUnavailable):
        world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert world.get_order(order_id).status is OrderStatus.PAYMENT_PROCESSING
    world.provider.down = False
    retried = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert retried.client_secret == "pi_fake_1_secret_fake"
    assert world.get_order(order_id).payment_attempts == 1


def test_the_breaker_opens_after_consecutive_outages_and_closes_after_a_good_trial() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown_s=30, clock=lambda: now[0])
    breaker.before_call()
    assert breaker.failed() == 1
    assert breaker.failed() == 30
    with pytest.raises(PaymentProviderUnavailable) as raised:
        breaker.before_call()
    assert raised.value.retry_after_s == 30
    now[0] = 20.0
    with pytest.raises(PaymentProviderUnavailable) as raised:
        breaker.before_call()
    assert raised.value.retry_after_s == 10
    now[0] = 31.0
    breaker.before_call()  # the trial
    with pytest.raises(PaymentProviderUnavailable):
        breaker.before_call()  # only one trial at a time
    breaker.succeeded()
    assert breaker.is_open is False
    breaker.before_call()


def test_refunding_a_flagged_capture_fails_the_order_so_it_can_be_paid_again(
    world: World,
) -> None:
    order_id = world.order(0)
    world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    handle_event(
        world.bus,
        world.provider,
        _intent_event(world, "evt_1", "payment_intent.succeeded", "pi_fake_1", amount_received=1),
    )
    heads = log_heads(world.apps)
    world.payments.refund(order_id, ctx("admin-1", "admin"), reason="mismatch")
    assert world.events(heads) == ["Transaction.Refunded", "Order.PaymentFailed"]
    again = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert again.provider_reference == "pi_fake_3"  # pi_fake_1 paid badly, re_fake_2 refunded it
    assert world.get_order(order_id).payment_attempts == 2


def _decline(world: World, event_id: str, reference: str) -> ProviderEvent:
    return _intent_event(
        world,
        event_id,
        "payment_intent.payment_failed",
        reference,
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"},
    )


def _fail_without_cancel(world: World, order_id: UUID) -> UUID:
    """Pay, then a decline whose best-effort cancel finds the provider down: the intent stays
    payable, as Stripe keeps a declined intent in requires_payment_method."""
    outcome = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert outcome.transaction_id is not None
    world.provider.down = True
    assert handle_event(
        world.bus, world.provider, _decline(world, "evt_f", "pi_fake_1")
    ).outcome == ("applied")
    world.provider.down = False
    assert world.provider.intents["pi_fake_1"].status == "requires_payment_method"
    assert world.get_order(order_id).status is OrderStatus.FAILED
    return outcome.transaction_id


def test_a_capture_after_the_decline_pays_the_failed_order_and_grants(world: World) -> None:
    order_id = world.order(0)
    transaction_id = _fail_without_cancel(world, order_id)
    world.provider.settle("pi_fake_1")  # the customer retried on the same intent
    heads = log_heads(world.apps)

    succeeded = _intent_event(world, "evt_s", "payment_intent.succeeded", "pi_fake_1")
    assert handle_event(world.bus, world.provider, succeeded).outcome == "applied"

    assert world.events(heads) == [
        "Transaction.Succeeded",
        "Transaction.AlertRaised",
        "Order.Paid",
        "Order.Fulfilled",
        "Library.Opened",
        "Library.EntitlementsGranted",
    ]
    transaction = world.get_transaction(transaction_id)
    assert (transaction.status, transaction.captured) == (
        TransactionStatus.SUCCEEDED,
        Money(500, "USD"),
    )
    assert transaction.alerts == ("captured_after_failure",)
    order = world.get_order(order_id)
    assert (order.status, order.payment_attempts) == (OrderStatus.FULFILLED, 1)
    assert world.library().is_entitled(world.icon_ids[0])
    assert [call for call in world.provider.calls if call[0] in ("create_intent", "refund")] == [
        ("create_intent", str(transaction_id))
    ]
    assert list(world.provider.intents) == ["pi_fake_1"]
    heads = log_heads(world.apps)
    assert handle_event(world.bus, world.provider, succeeded).outcome == "duplicate"
    with pytest.raises(IllegalTransition):  # paid: no second attempt, no second intent
        world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert world.events(heads) == []
    assert list(world.provider.intents) == ["pi_fake_1"]


def test_a_capture_of_a_superseded_attempt_is_refunded_and_pays_nothing(world: World) -> None:
    order_id = world.order(0)
    first = _fail_without_cancel(world, order_id)
    second = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert second.provider_reference == "pi_fake_2"
    world.provider.settle("pi_fake_1")
    heads = log_heads(world.apps)

    handle_event(
        world.bus,
        world.provider,
        _intent_event(world, "evt_s", "payment_intent.succeeded", "pi_fake_1"),
    )

    assert world.events(heads) == [
        "Transaction.Succeeded",
        "Transaction.AlertRaised",
        "Transaction.Refunded",
    ]
    assert world.provider.calls[-1] == ("refund", "pi_fake_1")
    stale = world.get_transaction(first)
    assert (stale.status, stale.alerts) == (
        TransactionStatus.REFUNDED,
        ("captured_after_failure",),
    )
    order = world.get_order(order_id)
    assert (order.status, order.payment_attempts) == (OrderStatus.PAYMENT_PROCESSING, 2)
    assert order.transaction_id == second.transaction_id
    assert Library.create_id(CUSTOMER) not in world.apps.commerce.repository
    heads = log_heads(world.apps)
    charge = ProviderEvent(
        "evt_r",
        "charge.refunded",
        {"id": "ch_1", "payment_intent": "pi_fake_1", "refunded": True, "metadata": {}},
    )
    assert handle_event(world.bus, world.provider, charge).outcome == "applied"
    assert world.events(heads) == []


def test_a_superseded_capture_the_provider_cannot_refund_now_is_refunded_on_redelivery(
    world: World,
) -> None:
    order_id = world.order(0)
    first = _fail_without_cancel(world, order_id)
    world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    world.provider.settle("pi_fake_1")
    succeeded = _intent_event(world, "evt_s", "payment_intent.succeeded", "pi_fake_1")
    refunds_before = len(world.provider.refunds)

    world.provider.down = True
    with pytest.raises(PaymentProviderUnavailable):  # the webhook answers 503: Stripe redelivers
        handle_event(world.bus, world.provider, succeeded)
    assert world.get_transaction(first).status is TransactionStatus.SUCCEEDED
    assert len(world.provider.refunds) == refunds_before
    world.provider.down = False
    heads = log_heads(world.apps)

    assert handle_event(world.bus, world.provider, succeeded).outcome == "duplicate"

    assert world.events(heads) == ["Transaction.Refunded"]
    assert world.get_transaction(first).status is TransactionStatus.REFUNDED
    assert len(world.provider.refunds) == refunds_before + 1


def test_a_mismatched_late_capture_is_refunded_and_the_order_stays_failed(world: World) -> None:
    order_id = world.order(0)
    transaction_id = _fail_without_cancel(world, order_id)
    world.provider.settle("pi_fake_1", received=Money(1, "USD"))
    heads = log_heads(world.apps)

    handle_event(
        world.bus,
        world.provider,
        _intent_event(world, "evt_s", "payment_intent.succeeded", "pi_fake_1", amount_received=1),
    )

    assert world.events(heads) == [
        "Transaction.Succeeded",
        "Transaction.AlertRaised",
        "Transaction.AlertRaised",
        "Transaction.Refunded",
    ]
    transaction = world.get_transaction(transaction_id)
    assert transaction.alerts == ("payment_mismatch", "captured_after_failure")
    assert transaction.status is TransactionStatus.REFUNDED
    assert world.get_order(order_id).status is OrderStatus.FAILED
    again = world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    assert world.get_order(order_id).payment_attempts == 2
    assert again.provider_reference == "pi_fake_3"  # re_fake_2 refunded pi_fake_1


def test_reconcile_cancels_a_declined_intent_the_webhook_could_not_cancel(world: World) -> None:
    order_id = world.order(0)
    _fail_without_cancel(world, order_id)
    pending = PendingTransactions()
    heads = log_heads(world.apps)
    calls = len(world.provider.calls)

    report = reconcile(world.bus, world.provider, pending, older_than=dt.timedelta(0))

    assert (report.checked, report.cancelled, report.late_captures) == (0, 1, 0)
    assert world.provider.calls[calls:] == [
        ("retrieve_intent", "pi_fake_1"),
        ("cancel_intent", "pi_fake_1"),
    ]
    assert world.provider.intents["pi_fake_1"].status == "canceled"
    assert world.events(heads) == []
    assert pending.to_cancel == set()
    again = reconcile(world.bus, world.provider, pending, older_than=dt.timedelta(0))
    assert (again.cancelled, len(world.provider.calls)) == (0, calls + 2)


def test_reconcile_keeps_a_declined_intent_to_cancel_while_the_provider_is_down(
    world: World,
) -> None:
    order_id = world.order(0)
    transaction_id = _fail_without_cancel(world, order_id)
    pending = PendingTransactions()
    world.provider.down = True
    down = reconcile(world.bus, world.provider, pending, older_than=dt.timedelta(0))
    assert (down.unavailable, down.cancelled, pending.to_cancel) == (True, 0, {transaction_id})
    world.provider.down = False
    up = reconcile(world.bus, world.provider, pending, older_than=dt.timedelta(0))
    assert (up.unavailable, up.cancelled, pending.to_cancel) == (False, 1, set())


def test_reconcile_settles_a_declined_intent_found_captured(world: World) -> None:
    order_id = world.order(0)
    transaction_id = _fail_without_cancel(world, order_id)
    world.provider.settle("pi_fake_1")
    pending = PendingTransactions()
    calls = len(world.provider.calls)

    report = reconcile(world.bus, world.provider, pending, older_than=dt.timedelta(0))

    assert (report.cancelled, report.late_captures) == (0, 1)
    assert world.provider.calls[calls:] == [("retrieve_intent", "pi_fake_1")]
    assert world.get_order(order_id).status is OrderStatus.FULFILLED
    assert world.get_transaction(transaction_id).status is TransactionStatus.SUCCEEDED
    assert world.library().is_entitled(world.icon_ids[0])
    assert pending.to_cancel == set()


def test_reconcile_finishes_the_refund_of_a_superseded_capture_an_outage_interrupted(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = world.order(0)
    first = _fail_without_cancel(world, order_id)
    world.payments.pay(order_id, ctx(CUSTOMER, "customer"))
    world.provider.settle("pi_fake_1")
    pending = PendingTransactions()
    hour = dt.timedelta(hours=1)  # attempt 2 is young: left alone

    def down(**_kwargs: object) -> str:
        raise PaymentProviderUnavailable("down for refunds", retry_after_s=5)

    with monkeypatch.context() as patch:
        patch.setattr(world.provider, "refund", down)
        interrupted = reconcile(world.bus, world.provider, pending, older_than=hour)
    assert (interrupted.unavailable, interrupted.late_captures) == (True, 0)
    assert world.get_transaction(first).status is TransactionStatus.SUCCEEDED
    assert pending.to_refund == {first}
    heads = log_heads(world.apps)

    finished = reconcile(world.bus, world.provider, pending, older_than=hour)

    assert (finished.unavailable, finished.checked) == (False, 0)
    assert world.events(heads) == ["Transaction.Refunded"]
    assert world.provider.calls[-1] == ("refund", "pi_fake_1")
    assert (pending.to_refund, pending.to_cancel) == (set(), set())
    assert world.get_order(order_id).status is OrderStatus.PAYMENT_PROCESSING


def test_a_late_capture_links_an_intent_only_its_failure_named(world: World) -> None:
    order_id = world.order(0)
    started = world.bus.execute(m.StartPayment(order_id=order_id), ctx(CUSTOMER, "customer"))
    obj: dict[str, object] = {
        "id": "pi_crashed",
        "amount_received": 500,
        "currency": "usd",
        "metadata": {"transaction_id": str(started.aggregate_id)},
    }
    world.provider.down = True  # the cancel after the decline fails
    handle_event(
        world.bus, world.provider, ProviderEvent("e1", "payment_intent.payment_failed", obj)
    )
    world.provider.down = False
    heads = log_heads(world.apps)

    handle_event(world.bus, world.provider, ProviderEvent("e2", "payment_intent.succeeded", obj))

    assert world.events(heads) == [
        "Transaction.Succeeded",
        "Transaction.AlertRaised",
        "Order.Paid",
        "Order.Fulfilled",
        "PaymentIntentLink.Linked",
        "Library.Opened",
        "Library.EntitlementsGranted",
    ]
    dispute = ProviderEvent(
        "e3",
        "charge.dispute.created",
        {"id": "dp_1", "payment_intent": "pi_crashed", "reason": "fraudulent", "metadata": {}},
    )
    handle_event(world.bus, world.provider, dispute)
    assert world.get_order(order_id).status is OrderStatus.REFUNDED
