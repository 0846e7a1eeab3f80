"""Cart expiry on the real event store and Redis: the sweeper records ``Cart.Expired`` for idle
carts (the aggregate decides), the view becomes a tombstone, and every read or change of an
expired cart is a 410 ``cart_expired`` problem with nothing appended."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from api.app import create_app
from commands import messages as m
from commands.errors import AccessDenied
from commands.policy import Actor
from domain.cart import Cart
from domain.errors import Gone, InvariantViolated
from infra.bootstrap import Container, bootstrap
from infra.cart_sweep import SweepReport, live_view, sweep
from infra.settings import Settings
from projections.cart_view import RedisCartView
from projections.carts import CartWrite, apply
from stream.envelope import to_envelope
from tests.support import appended_since, ctx, log_heads, published_catalog

SERVICE = ctx("service:carts", "service")


@pytest.fixture(scope="module")
def app_container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(settings)
    yield built
    built.close()


@pytest.fixture(scope="module")
def client(app_container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(app_container)) as test_client:
        yield test_client


@pytest.fixture
def view(app_container: Container) -> Iterator[RedisCartView]:
    prefix = f"test-expiry-{uuid.uuid4().hex[:8]}:"
    yield RedisCartView(app_container.redis, prefix=prefix)
    for key in app_container.redis.scan_iter(match=f"{prefix}*", count=1000):
        app_container.redis.delete(key)


def _auth(container: Container, actor: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(actor, frozenset({"customer"}))).access_token
    return {"Authorization": f"Bearer {token}"}


def _writes(container: Container, cart_id: UUID, since: int) -> list[CartWrite]:
    """The carts projector's writes for the cart's events stored after ``since``."""
    app = container.applications.commerce
    envelopes = [
        to_envelope("commerce", n.id, app.mapper.to_domain_event(n))
        for n in app.recorder.select_notifications(since + 1, limit=100_000)
        if n.originator_id == cart_id
    ]
    return [w for e in envelopes for w in apply(e)]


def _project(container: Container, view: RedisCartView, cart_id: UUID, since: int) -> None:
    """What the carts projector does with the cart's events stored after ``since``."""
    view.apply(_writes(container, cart_id, since))


def _cart_with_a_line(container: Container, customer: str) -> UUID:
    catalog = published_catalog(container.bus, f"c-{uuid.uuid4().hex[:6]}", prices=(250,))
    who = ctx(customer, "customer")
    cart_id = container.bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    icon_id = catalog.icon_ids[0]
    container.bus.execute(
        m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who
    )
    return cart_id


def test_the_sweeper_expires_idle_carts_and_leaves_changed_ones_open(
    app_container: Container, view: RedisCartView
) -> None:
    heads = log_heads(app_container.applications)
    cart_id = _cart_with_a_line(app_container, f"cust-{uuid.uuid4().hex[:6]}")
    _project(app_container, view, cart_id, heads["commerce"])

    # The view says idle (an hour from now), the cart, changed just now, says not: refused.
    later = time.time() + 2 * 3600
    before = log_heads(app_container.applications)
    report = sweep(app_container.bus, view, ttl_s=3600, now=later)
    assert (report.expired, report.refused) == (0, 1)
    assert appended_since(app_container.applications, before, "", {cart_id}) == []

    report = sweep(app_container.bus, view, ttl_s=0)
    assert (report.expired, report.refused) == (1, 0)
    appended = appended_since(app_container.applications, before, "", {cart_id})
    assert [(a.name, a.version) for a in appended] == [("Cart.Expired", 3)]
    expired = app_container.applications.commerce.repository.get(cart_id)
    assert isinstance(expired, Cart)
    assert expired.is_expired is True

    _project(app_container, view, cart_id, heads["commerce"])
    cart = view.get(str(cart_id))
    assert cart is not None
    assert (cart["status"], cart["lines"], cart["version"]) == ("expired", [], 3)
    assert view.idle_since(float("inf"), 10) == []
    assert sweep(app_container.bus, view, ttl_s=0) == SweepReport(expired=0, refused=0)


def test_expiring_is_for_the_service_role_and_only_once(app_container: Container) -> None:
    owner = f"cust-{uuid.uuid4().hex[:6]}"
    cart_id = _cart_with_a_line(app_container, owner)
    heads = log_heads(app_container.applications)
    with pytest.raises(AccessDenied):
        app_container.bus.execute(m.ExpireCart(cart_id=cart_id, idle_s=0), ctx(owner, "customer"))
    with pytest.raises(InvariantViolated) as not_idle:
        app_container.bus.execute(m.ExpireCart(cart_id=cart_id, idle_s=3600), SERVICE)
    assert not_idle.value.code == "cart_not_idle"
    assert appended_since(app_container.applications, heads, "", {cart_id}) == []
    result = app_container.bus.execute(m.ExpireCart(cart_id=cart_id, idle_s=0), SERVICE)
    assert result.version == 3
    with pytest.raises(Gone) as again:
        app_container.bus.execute(m.ExpireCart(cart_id=cart_id, idle_s=0), SERVICE)
    assert again.value.code == "cart_expired"
    appended = appended_since(app_container.applications, heads, "", {cart_id})
    assert [(a.name, a.version) for a in appended] == [("Cart.Expired", 3)]


def _problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert response.json()["status"] == status


def test_an_expired_cart_reads_and_refuses_changes_as_410_cart_expired(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    owner = f"cust-{uuid.uuid4().hex[:6]}"
    customer = _auth(app_container, owner)
    catalog = published_catalog(app_container.bus, f"c-{uuid.uuid4().hex[:6]}", prices=(250,))
    heads = log_heads(app_container.applications)
    cart_id = client.post("/v1/carts", json={"currency": "USD"}, headers=customer).json()["id"]
    line = {"product_kind": "icon", "product_id": str(catalog.icon_ids[0])}
    assert client.post(f"/v1/carts/{cart_id}/lines", json=line, headers=customer).status_code == 202
    app_container.bus.execute(m.ExpireCart(cart_id=UUID(cart_id), idle_s=0), SERVICE)
    _project(app_container, live_view(app_container.redis), UUID(cart_id), heads["commerce"])

    _problem(client.get(f"/v1/carts/{cart_id}", headers=customer), 410, "cart_expired")
    other = _auth(app_container, f"cust-{uuid.uuid4().hex[:6]}")
    _problem(client.get(f"/v1/carts/{cart_id}", headers=other), 403, "forbidden")
    _problem(client.get("/v1/carts/me", headers=customer), 404, "not_found")

    before = log_heads(app_container.applications)
    refused = {**customer, "X-Correlation-Id": f"corr-{uuid.uuid4().hex}"}
    set_line = {"product_kind": "set", "product_id": str(catalog.set_id)}
    calls = [
        client.post(f"/v1/carts/{cart_id}/lines", json=set_line, headers=refused),
        client.delete(f"/v1/carts/{cart_id}/lines/icon/{catalog.icon_ids[0]}", headers=refused),
        client.delete(f"/v1/carts/{cart_id}/lines", headers=refused),
        client.post(f"/v1/carts/{cart_id}/checkout", headers=refused),
    ]
    for response in calls:
        _problem(response, 410, "cart_expired")
    correlation = refused["X-Correlation-Id"]
    assert appended_since(app_container.applications, before, correlation, {UUID(cart_id)}) == []


def test_a_cart_whose_view_lapsed_before_an_event_reads_as_410_not_500(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    owner = f"cust-{uuid.uuid4().hex[:6]}"
    customer = _auth(app_container, owner)
    catalog = published_catalog(app_container.bus, f"c-{uuid.uuid4().hex[:6]}", prices=(250, 99))
    live = live_view(app_container.redis)
    heads = log_heads(app_container.applications)
    cart_id = client.post("/v1/carts", json={"currency": "USD"}, headers=customer).json()["id"]
    line = {"product_kind": "icon", "product_id": str(catalog.icon_ids[1])}
    assert client.post(f"/v1/carts/{cart_id}/lines", json=line, headers=customer).status_code == 202
    opened, added = _writes(app_container, UUID(cart_id), heads["commerce"])
    # Both events are stored before the lapse, so a running carts projector applying either late
    # leaves the same view: Opened before the delete is gone with it, after the tombstone a no-op.
    live.apply([opened])
    app_container.redis.delete(live.key(cart_id))  # the hash's TTL lapsed
    live.apply([added])
    try:
        _problem(client.get(f"/v1/carts/{cart_id}", headers=customer), 410, "cart_expired")
    finally:
        # Leave the live view as a replay of the history makes it (rebuild tests compare them).
        app_container.redis.delete(live.key(cart_id))
        live.apply([opened, added])
