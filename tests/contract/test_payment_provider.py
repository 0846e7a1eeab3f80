"""One suite for the payment-provider port, run against the in-memory fake and against
stripe-mock over real HTTP; then what only the Stripe adapter does (the request it sends, retries
with the same idempotency key, the circuit breaker) against stripe-mock and a closed port.

stripe-mock is stateless (it answers fixtures, reflecting a few parameters such as amount,
currency and ids in paths), so the suite asserts what both honour and the adapter tests assert
the requests we send."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

import pytest
import stripe

from commands.payments.port import PaymentProvider, PaymentProviderUnavailable
from domain.money import Money
from infra.settings import Settings
from infra.stripe_provider import StripePaymentProvider, build_stripe_provider
from tests.fakes.payment_provider import FakePaymentProvider


class RecordingClient(stripe.RequestsClient):
    """The real HTTP client, recording each request (and dropping the first ``drop`` ones
    the way a lost connection would)."""

    def __init__(self, *, drop: int = 0) -> None:
        super().__init__(timeout=5)
        self.sent: list[tuple[str, str, dict[str, str], dict[str, list[str]]]] = []
        self.drop = drop

    def request(  # type: ignore[override]
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        body = parse_qs(post_data.decode() if isinstance(post_data, bytes) else post_data or "")
        self.sent.append((method, url, dict(headers or {}), body))
        if self.drop:
            self.drop -= 1
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                "connection dropped", should_retry=True
            )
        return super().request(method, url, headers, post_data)


@pytest.fixture(params=["fake", "stripe-mock"])
def provider(request: pytest.FixtureRequest, settings: Settings) -> Iterator[PaymentProvider]:
    if request.param == "fake":
        yield FakePaymentProvider()
    else:
        yield build_stripe_provider(settings)


def test_an_intent_asks_the_exact_amount_and_has_a_client_secret(
    provider: PaymentProvider,
) -> None:
    intent = provider.create_intent(
        transaction_id=uuid.uuid4(), order_id=uuid.uuid4(), amount=Money(1234, "EUR")
    )
    assert intent.reference.startswith("pi_")
    assert intent.client_secret != ""
    assert intent.amount == Money(1234, "EUR")
    assert intent.received == Money(0, "EUR")
    assert intent.status == "requires_payment_method"


def test_a_created_intent_can_be_retrieved_cancelled_and_refunded(
    provider: PaymentProvider,
) -> None:
    transaction_id = uuid.uuid4()
    intent = provider.create_intent(
        transaction_id=transaction_id, order_id=uuid.uuid4(), amount=Money(500, "USD")
    )
    found = provider.retrieve_intent(intent.reference)
    assert found is not None
    assert found.reference == intent.reference
    assert provider.cancel_intent(intent.reference).reference == intent.reference
    assert provider.refund(reference=intent.reference, transaction_id=transaction_id).startswith(
        "re_"
    )


def _stripe(settings: Settings, client: RecordingClient, **changes: Any) -> StripePaymentProvider:
    return build_stripe_provider(dataclasses.replace(settings, **changes), http_client=client)


def test_the_adapter_sends_amount_currency_metadata_and_the_transaction_id_as_key(
    settings: Settings,
) -> None:
    client = RecordingClient()
    provider = _stripe(settings, client)
    transaction_id, order_id = uuid.uuid4(), uuid.uuid4()
    for _ in range(2):
        provider.create_intent(
            transaction_id=transaction_id, order_id=order_id, amount=Money(2599, "EUR")
        )
    assert len(client.sent) == 2
    for method, url, headers, body in client.sent:
        assert (method, url) == ("post", f"{settings.stripe_api_base}/v1/payment_intents")
        assert headers["Idempotency-Key"] == str(transaction_id)
        assert body == {
            "amount": ["2599"],
            "currency": ["eur"],
            "automatic_payment_methods[enabled]": ["true"],
            "metadata[transaction_id]": [str(transaction_id)],
            "metadata[order_id]": [str(order_id)],
        }


def test_a_dropped_request_is_retried_with_the_same_idempotency_key(settings: Settings) -> None:
    client = RecordingClient(drop=1)
    provider = _stripe(settings, client, stripe_max_retries=2)
    transaction_id = uuid.uuid4()
    intent = provider.create_intent(
        transaction_id=transaction_id, order_id=uuid.uuid4(), amount=Money(100, "USD")
    )
    assert intent.client_secret != ""
    keys = [headers["Idempotency-Key"] for _, _, headers, _ in client.sent]
    assert keys == [str(transaction_id)] * 2
    refund_client = RecordingClient(drop=1)
    _stripe(settings, refund_client).refund(reference="pi_1", transaction_id=transaction_id)
    assert [h["Idempotency-Key"] for _, _, h, _ in refund_client.sent] == [
        f"refund:{transaction_id}"
    ] * 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_stripe_opens_the_breaker_and_then_fails_fast(settings: Settings) -> None:
    client = RecordingClient()
    provider = _stripe(
        settings,
        client,
        stripe_api_base=f"http://127.0.0.1:{_closed_port()}",
        stripe_max_retries=0,
        stripe_breaker_failures=2,
        stripe_breaker_cooldown_s=60.0,
    )
    for expected_retry_after in (1, 60):
        with pytest.raises(PaymentProviderUnavailable) as raised:
            provider.retrieve_intent("pi_1")
        assert raised.value.retry_after_s == expected_retry_after
    assert len(client.sent) == 2
    with pytest.raises(PaymentProviderUnavailable) as raised:
        provider.create_intent(
            transaction_id=uuid.uuid4(), order_id=uuid.uuid4(), amount=Money(1, "USD")
        )
    assert raised.value.code == "payment_provider_unavailable"
    assert 55 <= raised.value.retry_after_s <= 60
    assert len(client.sent) == 2  # the open breaker sent nothing
    assert provider.breaker.is_open
