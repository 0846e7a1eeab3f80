"""The payment additions to the domain: intents recorded once, alerts on mismatched captures,
disputes, the intent → transaction link, and active grants."""

from __future__ import annotations

import time
import uuid

import pytest
import stripe

from commands.payments.port import WebhookRejected
from domain.errors import InvariantViolated
from domain.library import Library
from domain.money import Money
from domain.transaction import PaymentIntentLink, Transaction, TransactionStatus
from infra.stripe_provider import verify_webhook

TRACE = {"actor": "tester", "correlation_id": "corr-1"}
ORDER_ID = uuid.UUID("00000000-0000-4000-8000-0000000000bb")


def _started() -> Transaction:
    return Transaction.start(
        order_id=ORDER_ID, attempt=1, amount=Money(500, "USD"), provider="stripe", **TRACE
    )


def _names(aggregate: Transaction | Library) -> list[str]:
    return [type(e).__qualname__ for e in aggregate.collect_events()]


def test_an_intent_is_recorded_once_and_a_different_one_is_refused() -> None:
    transaction = _started()
    assert transaction.record_intent(provider_reference="pi_1", **TRACE) is True
    assert transaction.record_intent(provider_reference="pi_1", **TRACE) is False
    with pytest.raises(InvariantViolated) as raised:
        transaction.record_intent(provider_reference="pi_2", **TRACE)
    assert raised.value.code == "transaction_mismatch"
    assert _names(transaction) == ["Transaction.Started", "Transaction.IntentCreated"]
    assert transaction.provider_reference == "pi_1"


def test_a_mismatched_capture_records_the_success_and_an_alert() -> None:
    transaction = _started()
    transaction.record_intent(provider_reference="pi_1", **TRACE)
    transaction.succeed(provider_reference="pi_1", captured=Money(500, "EUR"), **TRACE)
    events = transaction.collect_events()
    assert [type(e).__qualname__ for e in events][-2:] == [
        "Transaction.Succeeded",
        "Transaction.AlertRaised",
    ]
    alert = events[-1]
    assert isinstance(alert, Transaction.AlertRaised)
    assert alert.alert == "payment_mismatch"
    assert alert.detail == (
        "currency differ: expected 500 USD with intent pi_1, captured 500 EUR with intent pi_1"
    )
    assert transaction.alerts == ("payment_mismatch",)


def test_a_matching_capture_raises_no_alert_and_a_dispute_closes_it() -> None:
    transaction = _started()
    transaction.succeed(provider_reference="pi_1", captured=Money(500, "USD"), **TRACE)
    transaction.dispute(reason="fraudulent", **TRACE)
    assert _names(transaction) == [
        "Transaction.Started",
        "Transaction.Succeeded",
        "Transaction.Disputed",
    ]
    assert transaction.status is TransactionStatus.DISPUTED
    assert transaction.alerts == ()


def test_the_intent_link_id_is_derived_from_provider_and_reference() -> None:
    link = PaymentIntentLink.link(
        provider="stripe", provider_reference="pi_9", transaction_id=ORDER_ID, **TRACE
    )
    assert link.id == PaymentIntentLink.create_id("stripe", "pi_9")
    assert link.id != PaymentIntentLink.create_id("stripe", "pi_8")
    assert link.transaction_id == ORDER_ID


def test_a_library_knows_its_active_grants() -> None:
    library = Library.open(customer_id="c-1", **TRACE)
    icon_id = uuid.uuid4()
    library.grant(order_id=ORDER_ID, icons={icon_id: 1}, **TRACE)
    assert library.has_active_grant(ORDER_ID) is True
    library.revoke(order_id=ORDER_ID, reason="refunded", **TRACE)
    assert library.has_active_grant(ORDER_ID) is False
    assert library.has_active_grant(uuid.uuid4()) is False


SECRET = "whsec_unit"
BODY = b'{"id": "evt_1", "type": "x", "data": {"object": {}}}'


def test_a_signed_webhook_is_accepted_and_anything_else_refused() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET)
    assert verify_webhook(BODY, header, SECRET, 300) == {
        "id": "evt_1",
        "type": "x",
        "data": {"object": {}},
    }
    stale = stripe.WebhookSignature.generate_signature_header(
        BODY.decode(), SECRET, int(time.time()) - 301
    )
    for bad in (None, "", "t=1", header.replace("v1=", "v0="), stale):
        with pytest.raises(WebhookRejected):
            verify_webhook(BODY, bad, SECRET, 300)
    with pytest.raises(WebhookRejected):
        verify_webhook(BODY + b" ", header, SECRET, 300)
    not_json = b"not json"
    signed = stripe.WebhookSignature.generate_signature_header(not_json.decode(), SECRET)
    with pytest.raises(WebhookRejected) as raised:
        verify_webhook(not_json, signed, SECRET, 300)
    assert raised.value.message == "the webhook body is not JSON"
