"""Pay over HTTP → Stripe intent (stripe-mock) → signed webhook → event store → relay → Kafka →
customer projection → the library lists the icon; a refund webhook takes it away again. Every
read carries the position the previous step returned: no sleeps."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
from redis import Redis

from commands import messages as m
from commands.policy import Actor
from domain.transaction import Transaction
from infra.bootstrap import bootstrap
from infra.settings import Settings, load_settings
from projections.positions import ProjectionPositions
from tests.e2e.test_run import running_app
from tests.support import ctx, published_catalog


def _signed(document: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(document).encode()
    t = int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={t},v1={digest}", "Content-Type": "application/json"}


def test_a_paid_order_shows_in_the_library_and_a_refund_removes_it() -> None:
    settings = load_settings()
    container = bootstrap(settings)
    catalog = published_catalog(container.bus, f"e2e-{uuid.uuid4().hex[:6]}", prices=(700,))
    (icon_id,) = catalog.icon_ids
    customer = f"e2e-payer-{uuid.uuid4().hex[:6]}"
    who = ctx(customer, "customer")
    cart_id = container.bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    container.bus.execute(
        m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who
    )
    order_id = container.bus.execute(m.CheckOut(cart_id=cart_id), who).aggregate_id
    auth = {
        "Authorization": "Bearer "
        + container.tokens.issue(Actor(customer, frozenset({"customer"}))).access_token
    }
    container.close()
    secret = settings.stripe_webhook_secret
    with running_app(read_timeout_s=60) as base, httpx.Client(base_url=base, timeout=90) as client:
        paying = client.post(f"/v1/orders/{order_id}/payments", headers=auth)
        assert paying.status_code == 201, paying.text
        payment = paying.json()
        assert payment["amount"] == {"amount_minor": 700, "currency": "USD"}
        assert payment["client_secret"]
        reader = bootstrap(settings)
        try:
            transaction: Any = reader.applications.commerce.repository.get(
                uuid.UUID(payment["transaction_id"])
            )
            assert isinstance(transaction, Transaction)
            reference = transaction.provider_reference
        finally:
            reader.close()
        metadata = {"transaction_id": payment["transaction_id"], "order_id": str(order_id)}
        succeeded = {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": reference,
                    "object": "payment_intent",
                    "amount": 700,
                    "amount_received": 700,
                    "currency": "usd",
                    "metadata": metadata,
                }
            },
        }
        body, headers = _signed(succeeded, secret)
        ack = client.post("/v1/webhooks/stripe", content=body, headers=headers)
        assert ack.status_code == 200, ack.text
        assert ack.json()["outcome"] == "applied"
        library = client.get(
            "/v1/me/library", params={"min_position": ack.json()["position"]}, headers=auth
        )
        assert library.status_code == 200, library.text
        assert [e["icon_id"] for e in library.json()["entitlements"]] == [str(icon_id)]
        assert library.json()["entitlements"][0]["order_id"] == str(order_id)
        assert _popularity(client, settings, icon_id, ack.json()["position"], catalog.position) == (
            1,
            0,
        )
        # The webhook's position is its last event (an entitlement, after the order's): the
        # orders read model reaches it too, although the order document's own last event is
        # earlier; the redelivered webhook answers the first answer's position.
        orders = client.get(
            "/v1/me/orders", params={"min_position": ack.json()["position"]}, headers=auth
        )
        assert orders.status_code == 200, orders.text
        assert [o["id"] for o in orders.json()["orders"]] == [str(order_id)]
        assert orders.json()["orders"][0]["status"] == "fulfilled"
        assert orders.json()["position"] < ack.json()["position"]
        again = client.post("/v1/webhooks/stripe", content=body, headers=headers)
        assert again.status_code == 200, again.text
        assert (again.json()["outcome"], again.json()["position"]) == (
            "duplicate",
            ack.json()["position"],
        )

        refunded = {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "charge.refunded",
            "data": {
                "object": {
                    "id": "ch_e2e",
                    "object": "charge",
                    "payment_intent": reference,
                    "refunded": True,
                    "metadata": metadata,
                }
            },
        }
        body, headers = _signed(refunded, secret)
        ack = client.post("/v1/webhooks/stripe", content=body, headers=headers)
        assert ack.status_code == 200, ack.text
        after = client.get(
            "/v1/me/library", params={"min_position": ack.json()["position"]}, headers=auth
        )
        assert after.status_code == 200, after.text
        assert after.json()["entitlements"] == []
        assert _popularity(client, settings, icon_id, ack.json()["position"], catalog.position) == (
            0,
            0,
        )


def _popularity(
    client: httpx.Client,
    settings: Settings,
    icon_id: uuid.UUID,
    position: int,
    catalog_position: int,
) -> tuple[int, int]:
    """The icon's (purchases, downloads) once the popularity projection has applied the commerce
    log up to ``position`` (woken by its advance notices, never by a sleep), read from the
    catalog once it has applied the catalog log up to ``catalog_position``."""
    redis = Redis(host=settings.redis_host, port=settings.redis_port)
    positions = ProjectionPositions(redis)
    pubsub = redis.pubsub()
    pubsub.subscribe(positions.channel("popularity"))
    deadline = time.monotonic() + 90
    try:
        while positions.get("popularity").get("commerce", 0) < position:
            assert time.monotonic() < deadline, "popularity never reached the position"
            pubsub.get_message(timeout=5)
    finally:
        pubsub.close()
        redis.close()
    icon = client.get(f"/v1/icons/{icon_id}", params={"min_position": catalog_position})
    assert icon.status_code == 200, icon.text
    return icon.json()["purchases"], icon.json()["downloads"]
