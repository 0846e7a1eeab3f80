"""Payments over HTTP on the real event store and stripe-mock: paying, Stripe's signed webhooks
(built and signed here with Stripe's scheme: ``t=…,v1=`` HMAC-SHA256 of ``"{t}.{body}"``),
refunds, disputes, reconciliation, concurrency and the outage answer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from commands import messages as m
from commands.payments.reconcile import PendingTransactions, reconcile
from commands.policy import Actor
from commands.unit_of_work import UnitOfWork
from domain.icon_set import IconSet
from domain.library import Library
from domain.order import Order, OrderStatus
from domain.transaction import Transaction, TransactionStatus
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from infra.stripe_provider import build_stripe_provider
from tests.contract.test_payment_provider import RecordingClient
from tests.support import (
    SERVICE,
    appended_since,
    ctx,
    log_heads,
    published_catalog,
    record_media,
)

Client = TestClient[Litestar]


@pytest.fixture(scope="module")
def recording() -> RecordingClient:
    return RecordingClient()


@pytest.fixture(scope="module")
def app_container(settings: Settings, recording: RecordingClient) -> Iterator[Container]:
    built = bootstrap(settings)
    # The real adapter against stripe-mock, with the HTTP client recording what it sends.
    built.__dict__["payment_provider"] = build_stripe_provider(settings, http_client=recording)
    yield built
    built.close()


@pytest.fixture(scope="module")
def client(app_container: Container) -> Iterator[Client]:
    with TestClient(create_app(app_container)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def icons(app_container: Container) -> tuple[UUID, ...]:
    owner = f"pay-owner-{uuid.uuid4().hex[:6]}"
    return published_catalog(app_container.bus, owner, prices=(500, 0, 250)).icon_ids


def _auth(container: Container, actor: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(actor, frozenset(roles))).access_token
    return {"Authorization": f"Bearer {token}"}


def _order(container: Container, customer: str, *icon_ids: UUID) -> UUID:
    who = ctx(customer, "customer")
    cart_id = container.bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    for icon_id in icon_ids:
        container.bus.execute(
            m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who
        )
    return container.bus.execute(m.CheckOut(cart_id=cart_id), who).aggregate_id


def _read(container: Container, cls: Any, aggregate_id: UUID) -> Any:
    return UnitOfWork.read(container.applications.commerce, cls, aggregate_id)


def _sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _event(kind: str, obj: dict[str, Any]) -> tuple[str, bytes]:
    event_id = f"evt_{uuid.uuid4().hex}"
    document = {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}
    return event_id, json.dumps(document).encode()


def _intent_object(container: Container, transaction_id: UUID, **fields: Any) -> dict[str, Any]:
    transaction = _read(container, Transaction, transaction_id)
    return {
        "id": transaction.provider_reference,
        "object": "payment_intent",
        "amount": transaction.amount.amount_minor,
        "amount_received": transaction.amount.amount_minor,
        "currency": transaction.amount.currency.lower(),
        "metadata": {"transaction_id": str(transaction_id), "order_id": str(transaction.order_id)},
        **fields,
    }


def _post_webhook(
    client: Client, settings: Settings, body: bytes, *, signature: str | None = "sign"
) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["Stripe-Signature"] = _sign(body, settings.stripe_webhook_secret)
    elif signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/v1/webhooks/stripe", content=body, headers=headers)


@dataclasses.dataclass
class Paid:
    customer: str
    order_id: UUID
    transaction_id: UUID
    library_id: UUID


def _pay(client: Client, container: Container, icon_id: UUID) -> Paid:
    customer = f"pay-cust-{uuid.uuid4().hex[:6]}"
    order_id = _order(container, customer, icon_id)
    response = client.post(
        f"/v1/orders/{order_id}/payments", headers=_auth(container, customer, "customer")
    )
    assert response.status_code == 201, response.text
    return Paid(
        customer, order_id, UUID(response.json()["transaction_id"]), Library.create_id(customer)
    )


def _settle(client: Client, container: Container, settings: Settings, paid: Paid) -> str:
    event_id, body = _event(
        "payment_intent.succeeded", _intent_object(container, paid.transaction_id)
    )
    response = _post_webhook(client, settings, body)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    return event_id


def test_paying_answers_the_client_secret_for_the_exact_amount(
    client: Client,
    app_container: Container,
    icons: tuple[UUID, ...],
    recording: RecordingClient,
) -> None:
    customer = f"pay-cust-{uuid.uuid4().hex[:6]}"
    order_id = _order(app_container, customer, icons[0], icons[2])
    sent_before = len(recording.sent)
    response = client.post(
        f"/v1/orders/{order_id}/payments", headers=_auth(app_container, customer, "customer")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    transaction_id = UUID(body["transaction_id"])
    assert body["status"] == "payment_processing"
    assert body["amount"] == {"amount_minor": 750, "currency": "USD"}
    assert body["client_secret"]
    method, url, headers, sent = recording.sent[sent_before]
    assert (method, url) == ("post", f"{app_container.settings.stripe_api_base}/v1/payment_intents")
    assert headers["Idempotency-Key"] == str(transaction_id)
    assert (sent["amount"], sent["currency"]) == (["750"], ["usd"])
    assert sent["metadata[order_id]"] == [str(order_id)]
    order = _read(app_container, Order, order_id)
    assert order.status is OrderStatus.PAYMENT_PROCESSING
    assert order.transaction_id == transaction_id
    assert _read(app_container, Transaction, transaction_id).provider_reference.startswith("pi_")


def test_a_signed_success_pays_grants_and_replays_append_nothing(
    client: Client, app_container: Container, icons: tuple[UUID, ...], settings: Settings
) -> None:
    paid = _pay(client, app_container, icons[0])
    heads = log_heads(app_container.applications)
    event_id, body = _event(
        "payment_intent.succeeded", _intent_object(app_container, paid.transaction_id)
    )
    first = _post_webhook(client, settings, body)
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "applied"
    watched = {paid.order_id, paid.transaction_id, paid.library_id}
    assert [e.name for e in appended_since(app_container.applications, heads, "-", watched)] == [
        "Transaction.Succeeded",
        "Order.Paid",
        "Order.Fulfilled",
        "Library.Opened",
        "Library.EntitlementsGranted",
    ]
    assert _read(app_container, Library, paid.library_id).is_entitled(icons[0])
    heads = log_heads(app_container.applications)
    replay = _post_webhook(client, settings, body)
    assert replay.status_code == 200
    assert replay.json()["outcome"] == "duplicate"
    assert replay.json()["event_id"] == first.json()["event_id"] == event_id
    late_failure = _event(
        "payment_intent.payment_failed",
        _intent_object(app_container, paid.transaction_id, last_payment_error={"code": "x"}),
    )[1]
    late = _post_webhook(client, settings, late_failure)
    assert late.status_code == 200, late.text
    assert appended_since(app_container.applications, heads, "-", watched) == []
    assert _read(app_container, Order, paid.order_id).status is OrderStatus.FULFILLED


@pytest.mark.parametrize("case", ["unsigned", "bad_signature", "wrong_secret", "stale"])
def test_webhooks_that_are_not_signed_by_stripe_now_are_401_and_record_nothing(
    client: Client,
    app_container: Container,
    icons: tuple[UUID, ...],
    settings: Settings,
    case: str,
) -> None:
    paid = _pay(client, app_container, icons[0])
    event_id, body = _event(
        "payment_intent.succeeded", _intent_object(app_container, paid.transaction_id)
    )
    signatures = {
        "unsigned": None,
        "bad_signature": _sign(body, settings.stripe_webhook_secret)[:-4] + "0000",
        "wrong_secret": _sign(body, "whsec_someone_else"),
        "stale": _sign(body, settings.stripe_webhook_secret, int(time.time()) - 301),
    }
    heads = log_heads(app_container.applications)
    response = _post_webhook(client, settings, body, signature=signatures[case])
    assert response.status_code == 401  # the signature is the webhook's credential
    assert response.headers["www-authenticate"] == 'Stripe-Signature realm="iconmarket"'
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "webhook_rejected"
    if case == "stale":
        assert "Timestamp outside the tolerance zone" in response.json()["detail"]
    watched = {paid.order_id, paid.transaction_id, paid.library_id}
    assert appended_since(app_container.applications, heads, f"stripe:{event_id}", watched) == []
    assert _read(app_container, Order, paid.order_id).status is OrderStatus.PAYMENT_PROCESSING


def test_a_mismatched_capture_is_flagged_alerted_and_not_paid(
    client: Client, app_container: Container, icons: tuple[UUID, ...], settings: Settings
) -> None:
    paid = _pay(client, app_container, icons[0])
    heads = log_heads(app_container.applications)
    body = _event(
        "payment_intent.succeeded",
        _intent_object(app_container, paid.transaction_id, amount_received=499),
    )[1]
    assert _post_webhook(client, settings, body).status_code == 200
    watched = {paid.order_id, paid.transaction_id, paid.library_id}
    assert [e.name for e in appended_since(app_container.applications, heads, "-", watched)] == [
        "Transaction.Succeeded",
        "Transaction.AlertRaised",
    ]
    transaction = _read(app_container, Transaction, paid.transaction_id)
    assert [x.value for x in transaction.mismatches] == ["amount"]
    assert transaction.alerts == ("payment_mismatch",)
    assert _read(app_container, Order, paid.order_id).status is OrderStatus.PAYMENT_PROCESSING
    currency = _event(
        "payment_intent.succeeded",
        _intent_object(
            app_container, _pay(client, app_container, icons[0]).transaction_id, currency="eur"
        ),
    )[1]
    assert _post_webhook(client, settings, currency).status_code == 200


def test_only_admins_refund_and_a_refund_revokes(
    client: Client, app_container: Container, icons: tuple[UUID, ...], settings: Settings
) -> None:
    paid = _pay(client, app_container, icons[0])
    _settle(client, app_container, settings, paid)
    heads = log_heads(app_container.applications)
    watched = {paid.order_id, paid.transaction_id, paid.library_id}
    for roles in (("customer",), ("contributor",), ("auditor",)):
        refused = client.post(
            f"/v1/orders/{paid.order_id}/refund",
            json={"reason": "please"},
            headers=_auth(app_container, paid.customer, *roles),
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
    assert appended_since(app_container.applications, heads, "-", watched) == []
    refunded = client.post(
        f"/v1/orders/{paid.order_id}/refund",
        json={"reason": "goodwill"},
        headers=_auth(app_container, "admin-1", "admin"),
    )
    assert refunded.status_code == 202, refunded.text
    assert refunded.json()["refund_id"].startswith("re_")
    assert [e.name for e in appended_since(app_container.applications, heads, "-", watched)] == [
        "Transaction.Refunded",
        "Order.Refunded",
        "Library.EntitlementsRevoked",
    ]
    assert not _read(app_container, Library, paid.library_id).is_entitled(icons[0])
    heads = log_heads(app_container.applications)
    again = client.post(
        f"/v1/orders/{paid.order_id}/refund", headers=_auth(app_container, "admin-1", "admin")
    )
    assert again.status_code == 202  # a repeated refund is the same refund (idempotency key)
    assert appended_since(app_container.applications, heads, "-", watched) == []


def test_a_stripe_refund_and_a_dispute_revoke(
    client: Client, app_container: Container, icons: tuple[UUID, ...], settings: Settings
) -> None:
    refunded, disputed = (_pay(client, app_container, icons[0]) for _ in range(2))
    for paid in (refunded, disputed):
        _settle(client, app_container, settings, paid)
    heads = log_heads(app_container.applications)
    reference = _read(app_container, Transaction, refunded.transaction_id).provider_reference
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": reference,
        "refunded": True,
        "metadata": {"transaction_id": str(refunded.transaction_id)},
    }
    assert _post_webhook(client, settings, _event("charge.refunded", charge)[1]).status_code == 200
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_2",
        "payment_intent": _read(
            app_container, Transaction, disputed.transaction_id
        ).provider_reference,
        "reason": "fraudulent",
        "metadata": {},
    }
    response = _post_webhook(client, settings, _event("charge.dispute.created", dispute)[1])
    assert response.status_code == 200
    assert response.json()["outcome"] == "applied"
    for paid, first in ((refunded, "Transaction.Refunded"), (disputed, "Transaction.Disputed")):
        watched = {paid.order_id, paid.transaction_id, paid.library_id}
        assert [
            e.name for e in appended_since(app_container.applications, heads, "-", watched)
        ] == [
            first,
            "Order.Refunded",
            "Library.EntitlementsRevoked",
        ]
        assert not _read(app_container, Library, paid.library_id).is_entitled(icons[0])


def test_a_failure_lets_the_customer_pay_again(
    client: Client, app_container: Container, icons: tuple[UUID, ...], settings: Settings
) -> None:
    paid = _pay(client, app_container, icons[0])
    body = _event(
        "payment_intent.payment_failed",
        _intent_object(
            app_container, paid.transaction_id, last_payment_error={"code": "card_declined"}
        ),
    )[1]
    assert _post_webhook(client, settings, body).status_code == 200
    order = _read(app_container, Order, paid.order_id)
    assert order.status is OrderStatus.FAILED
    again = client.post(
        f"/v1/orders/{paid.order_id}/payments",
        headers=_auth(app_container, paid.customer, "customer"),
    )
    assert again.status_code == 201
    assert UUID(again.json()["transaction_id"]) != paid.transaction_id
    assert _read(app_container, Order, paid.order_id).payment_attempts == 2


def _decline(client: Client, container: Container, settings: Settings, paid: Paid) -> None:
    body = _event(
        "payment_intent.payment_failed",
        _intent_object(
            container, paid.transaction_id, last_payment_error={"code": "card_declined"}
        ),
    )[1]
    assert _post_webhook(client, settings, body).status_code == 200
    assert _read(container, Order, paid.order_id).status is OrderStatus.FAILED


def test_a_capture_after_the_decline_pays_the_failed_order(
    client: Client, app_container: Container, icons: tuple[UUID, ...], settings: Settings
) -> None:
    paid = _pay(client, app_container, icons[0])
    _decline(client, app_container, settings, paid)
    heads = log_heads(app_container.applications)

    _settle(client, app_container, settings, paid)  # the customer retried on the same intent

    watched = {paid.order_id, paid.transaction_id, paid.library_id}
    assert [e.name for e in appended_since(app_container.applications, heads, "-", watched)] == [
        "Transaction.Succeeded",
        "Transaction.AlertRaised",
        "Order.Paid",
        "Order.Fulfilled",
        "Library.Opened",
        "Library.EntitlementsGranted",
    ]
    transaction = _read(app_container, Transaction, paid.transaction_id)
    assert (transaction.status, transaction.alerts) == (
        TransactionStatus.SUCCEEDED,
        ("captured_after_failure",),
    )
    order = _read(app_container, Order, paid.order_id)
    assert (order.status, order.payment_attempts) == (OrderStatus.FULFILLED, 1)
    assert _read(app_container, Library, paid.library_id).is_entitled(icons[0])
    again = client.post(
        f"/v1/orders/{paid.order_id}/payments",
        headers=_auth(app_container, paid.customer, "customer"),
    )
    assert again.status_code == 409, again.text


def test_a_capture_of_a_superseded_attempt_is_refunded_at_stripe(
    client: Client,
    app_container: Container,
    icons: tuple[UUID, ...],
    settings: Settings,
    recording: RecordingClient,
) -> None:
    paid = _pay(client, app_container, icons[0])
    _decline(client, app_container, settings, paid)
    again = client.post(
        f"/v1/orders/{paid.order_id}/payments",
        headers=_auth(app_container, paid.customer, "customer"),
    )
    assert again.status_code == 201, again.text
    heads = log_heads(app_container.applications)
    sent_before = len(recording.sent)

    _settle(client, app_container, settings, paid)

    watched = {paid.order_id, paid.transaction_id, paid.library_id}
    assert [e.name for e in appended_since(app_container.applications, heads, "-", watched)] == [
        "Transaction.Succeeded",
        "Transaction.AlertRaised",
        "Transaction.Refunded",
    ]
    refunds = [
        headers["Idempotency-Key"]
        for method, url, headers, _ in recording.sent[sent_before:]
        if method == "post" and url.endswith("/v1/refunds")
    ]
    assert refunds == [f"refund:{paid.transaction_id}"]
    order = _read(app_container, Order, paid.order_id)
    assert (order.status, order.payment_attempts) == (OrderStatus.PAYMENT_PROCESSING, 2)
    assert order.transaction_id == UUID(again.json()["transaction_id"])


def test_a_free_order_completes_without_stripe(
    client: Client,
    app_container: Container,
    icons: tuple[UUID, ...],
    recording: RecordingClient,
) -> None:
    customer = f"pay-cust-{uuid.uuid4().hex[:6]}"
    order_id = _order(app_container, customer, icons[1])
    sent_before = len(recording.sent)
    response = client.post(
        f"/v1/orders/{order_id}/payments", headers=_auth(app_container, customer, "customer")
    )
    assert response.status_code == 201, response.text
    assert response.json()["client_secret"] is None
    assert response.json()["transaction_id"] is None
    assert response.json()["status"] == "fulfilled"
    assert len(recording.sent) == sent_before
    library = _read(app_container, Library, Library.create_id(customer))
    assert library.is_entitled(icons[1])


def test_someone_else_cannot_pay_my_order(
    client: Client, app_container: Container, icons: tuple[UUID, ...]
) -> None:
    order_id = _order(app_container, f"pay-cust-{uuid.uuid4().hex[:6]}", icons[0])
    heads = log_heads(app_container.applications)
    response = client.post(
        f"/v1/orders/{order_id}/payments",
        headers=_auth(app_container, "a-stranger", "customer"),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert appended_since(app_container.applications, heads, "-", {order_id}) == []


def test_the_same_pay_request_twice_at_once_makes_one_attempt_and_one_key(
    client: Client,
    app_container: Container,
    icons: tuple[UUID, ...],
    recording: RecordingClient,
) -> None:
    customer = f"pay-cust-{uuid.uuid4().hex[:6]}"
    order_id = _order(app_container, customer, icons[0])
    heads = log_heads(app_container.applications)
    sent_before = len(recording.sent)
    headers = _auth(app_container, customer, "customer")
    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(
            pool.map(
                lambda _: client.post(f"/v1/orders/{order_id}/payments", headers=headers),
                range(2),
            )
        )
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    transaction_ids = {r.json()["transaction_id"] for r in responses}
    assert len(transaction_ids) == 1
    (transaction_id,) = transaction_ids
    events = appended_since(
        app_container.applications, heads, "-", {order_id, UUID(transaction_id)}
    )
    assert sorted(e.name for e in events) == [
        "Order.PaymentStarted",
        "Transaction.IntentCreated",
        "Transaction.Started",
    ]
    created = [
        headers["Idempotency-Key"]
        for method, url, headers, _ in recording.sent[sent_before:]
        if method == "post" and url.endswith("/v1/payment_intents")
    ]
    assert created
    assert set(created) == {transaction_id}


def test_reconcile_resolves_attempts_left_pending(
    client: Client, app_container: Container, icons: tuple[UUID, ...]
) -> None:
    bus = app_container.bus
    pending = PendingTransactions(position=log_heads(app_container.applications)["commerce"])
    customer = f"pay-cust-{uuid.uuid4().hex[:6]}"
    crashed = _order(app_container, customer, icons[0])  # started, then the process died
    crashed_tx = bus.execute(m.StartPayment(order_id=crashed), ctx(customer, "customer"))
    abandoned = _pay(client, app_container, icons[0])  # an intent nobody paid
    report = reconcile(
        bus,
        app_container.payment_provider,
        pending,
        older_than=dt.timedelta(0),
        now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
    )
    assert report.failed >= 2
    assert report.unavailable is False
    crashed_transaction = _read(app_container, Transaction, crashed_tx.aggregate_id)
    assert crashed_transaction.status is TransactionStatus.FAILED
    assert crashed_transaction.failure_reason == "intent_never_created"
    abandoned_transaction = _read(app_container, Transaction, abandoned.transaction_id)
    assert abandoned_transaction.failure_reason == "abandoned"
    for order_id in (crashed, abandoned.order_id):
        assert _read(app_container, Order, order_id).status is OrderStatus.FAILED


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_while_stripe_is_down_paying_is_503_with_retry_after_and_a_retry_completes(
    settings: Settings, icons: tuple[UUID, ...], app_container: Container
) -> None:
    down = dataclasses.replace(
        settings,
        stripe_api_base=f"http://127.0.0.1:{_closed_port()}",
        stripe_max_retries=0,
        stripe_breaker_failures=1,
    )
    container = bootstrap(down)
    try:
        with TestClient(create_app(container)) as down_client:
            customer = f"pay-cust-{uuid.uuid4().hex[:6]}"
            order_id = _order(container, customer, icons[0])
            headers = _auth(container, customer, "customer")
            response = down_client.post(f"/v1/orders/{order_id}/payments", headers=headers)
            assert response.status_code == 503
            assert response.headers["retry-after"] == str(int(down.stripe_breaker_cooldown_s))
            assert response.json()["code"] == "payment_provider_unavailable"
            assert _read(container, Order, order_id).status is OrderStatus.PAYMENT_PROCESSING
    finally:
        container.close()
    with TestClient(create_app(app_container)) as up_client:
        retried = up_client.post(f"/v1/orders/{order_id}/payments", headers=headers)
    assert retried.status_code == 201, retried.text
    assert retried.json()["client_secret"]
    assert _read(app_container, Order, order_id).payment_attempts == 1


def test_a_signed_body_that_is_not_an_event_is_400(client: Client, settings: Settings) -> None:
    for body in (b'{"hello": 1}', b"[1, 2]", b"not json"):
        response = _post_webhook(client, settings, body)
        assert response.status_code == 400
        assert response.json()["code"] == "webhook_rejected"
    unknown = _event("customer.created", {"id": "cus_1", "object": "customer"})[1]
    ignored = _post_webhook(client, settings, unknown)
    assert ignored.status_code == 200
    assert ignored.json()["outcome"] == "ignored"
    assert ignored.json()["position"] is None


def _revise_and_render(container: Container, icon_id: UUID, owner: str) -> None:
    """A second SVG revision of a published icon, rendered again, so it sells at version 2."""
    content_hash = f"sha256-{uuid.uuid4().hex}"
    original = m.SvgOriginal(
        key=f"originals/{content_hash}.svg",
        content_hash=content_hash,
        size_bytes=321,
        width=24,
        height=24,
    )
    container.bus.execute(
        m.ReviseSvg(icon_id=icon_id, original=original), ctx(owner, "contributor")
    )
    item = m.DerivativeItem(kind="png", size=64, key=f"d/{content_hash}/png-64.png", size_bytes=9)
    container.bus.execute(
        m.RecordDerivatives(
            icon_id=icon_id, source_hash=content_hash, renderer_version="r1", items=(item,)
        ),
        SERVICE,
    )


def test_a_paid_bundle_grants_its_published_icons_and_a_refund_revokes_them(
    client: Client, app_container: Container, settings: Settings
) -> None:
    apps = app_container.applications
    owner = f"pay-bundle-{uuid.uuid4().hex[:6]}"
    catalog = published_catalog(app_container.bus, owner, prices=(500, 250), bundle=900)
    first, second = catalog.icon_ids
    _revise_and_render(app_container, second, owner)
    heads = log_heads(apps)
    draft_ctx = ctx(owner, "contributor")
    create = m.CreateIcon(
        set_id=catalog.set_id, name="arrow draft", price=m.Money(amount_minor=300, currency="USD")
    )
    draft = app_container.bus.execute(create, draft_ctx).aggregate_id
    added = appended_since(apps, heads, draft_ctx.correlation_id)
    assert [(e.name, e.originator_id) for e in added] == [
        ("IconSet.IconAdded", catalog.set_id),
        ("Icon.Created", draft),
    ]
    assert added[1].position == added[0].position + 1  # one save, one store transaction
    record_media(app_container.bus, draft, draft_ctx)  # publishable, but never published
    icon_set = UnitOfWork.read(apps.catalog, IconSet, catalog.set_id)
    assert icon_set.member_icon_ids == (first, second, draft)

    customer = f"pay-cust-{uuid.uuid4().hex[:6]}"
    who = ctx(customer, "customer")
    cart_id = app_container.bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    app_container.bus.execute(
        m.AddToCart(cart_id=cart_id, product_kind="set", product_id=catalog.set_id), who
    )
    order_id = app_container.bus.execute(m.CheckOut(cart_id=cart_id), who).aggregate_id
    response = client.post(
        f"/v1/orders/{order_id}/payments", headers=_auth(app_container, customer, "customer")
    )
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == {"amount_minor": 900, "currency": "USD"}
    paid = Paid(
        customer, order_id, UUID(response.json()["transaction_id"]), Library.create_id(customer)
    )
    heads = log_heads(apps)
    _settle(client, app_container, settings, paid)

    watched = {paid.order_id, paid.transaction_id, paid.library_id}
    assert [e.name for e in appended_since(apps, heads, "-", watched)] == [
        "Transaction.Succeeded",
        "Order.Paid",
        "Order.Fulfilled",
        "Library.Opened",
        "Library.EntitlementsGranted",
    ]
    assert _read(app_container, Order, order_id).status is OrderStatus.FULFILLED
    library = _read(app_container, Library, paid.library_id)
    assert sorted((e.icon_id, e.icon_version, e.order_id) for e in library.entitlements) == sorted(
        [(first, 1, order_id), (second, 2, order_id)]
    )
    assert not library.is_entitled(draft)

    heads = log_heads(apps)
    refunded = client.post(
        f"/v1/orders/{order_id}/refund",
        json={"reason": "bundle returned"},
        headers=_auth(app_container, "admin-1", "admin"),
    )
    assert refunded.status_code == 202, refunded.text
    assert [e.name for e in appended_since(apps, heads, "-", watched)] == [
        "Transaction.Refunded",
        "Order.Refunded",
        "Library.EntitlementsRevoked",
    ]
    library = _read(app_container, Library, paid.library_id)
    assert library.entitlements == ()
    assert _read(app_container, Order, order_id).status is OrderStatus.REFUNDED
