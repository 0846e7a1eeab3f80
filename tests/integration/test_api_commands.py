"""Commands over HTTP on the real event store: guards, validation, and the shop flow."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from litestar.testing import TestClient

from api.app import create_app
from commands.policy import Actor
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from tests.support import published_catalog


@pytest.fixture(scope="module")
def app_container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(settings)
    yield built
    built.close()


@pytest.fixture(scope="module")
def client(app_container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(app_container)) as test_client:
        yield test_client


def _auth(container: Container, actor: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(actor, frozenset(roles))).access_token
    return {"Authorization": f"Bearer {token}"}


def _heads(container: Container) -> list[int]:
    return [app.recorder.max_notification_id() or 0 for app in container.applications.all()]


def test_invalid_body_is_422_per_field_and_appends_nothing(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    headers = _auth(app_container, f"c-{uuid.uuid4().hex[:6]}", "contributor")
    heads = _heads(app_container)
    empty = client.post("/v1/families", json={"name": ""}, headers=headers)
    unknown = client.post("/v1/families", json={"name": "A", "bogus": 1}, headers=headers)
    assert empty.status_code == 422
    assert empty.headers["content-type"] == "application/problem+json"
    assert empty.json()["code"] == "validation_failed"
    assert empty.json()["errors"] == [
        {"message": "Expected `str` of length >= 1", "key": "name", "source": "body"}
    ]
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [
        {"message": "Object contains unknown field `bogus`", "key": "data", "source": "body"}
    ]
    assert _heads(app_container) == heads


def test_a_value_outside_the_domain_s_vocabulary_is_refused_at_the_edge(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    headers = _auth(app_container, f"c-{uuid.uuid4().hex[:6]}", "contributor")
    family = client.post("/v1/families", json={"name": "Arrows"}, headers=headers).json()
    heads = _heads(app_container)
    response = client.post(
        f"/v1/families/{family['id']}/sets",
        json={"name": "S", "style": "glitter"},
        headers=headers,
    )
    assert response.status_code == 422  # the body's schema has the domain's styles
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"][0]["key"] == "style"
    assert _heads(app_container) == heads


def test_stale_if_match_is_409_and_appends_nothing(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    headers = _auth(app_container, f"c-{uuid.uuid4().hex[:6]}", "contributor")
    created = client.post("/v1/families", json={"name": "Arrows"}, headers=headers)
    family_id = created.json()["id"]
    assert created.headers["etag"] == '"1"'
    heads = _heads(app_container)
    stale = client.patch(
        f"/v1/families/{family_id}", json={"name": "X"}, headers={**headers, "If-Match": '"4"'}
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    assert _heads(app_container) == heads
    fresh = client.patch(
        f"/v1/families/{family_id}", json={"name": "X"}, headers={**headers, "If-Match": '"1"'}
    )
    assert fresh.status_code == 202
    assert fresh.json()["version"] == 2


def test_idempotency_key_over_http(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    headers = {
        **_auth(app_container, f"c-{uuid.uuid4().hex[:6]}", "contributor"),
        "Idempotency-Key": f"create-{uuid.uuid4().hex}",
    }
    first = client.post("/v1/families", json={"name": "Once"}, headers=headers)
    heads = _heads(app_container)
    with ThreadPoolExecutor(max_workers=4) as pool:
        repeats = list(
            pool.map(
                lambda _: client.post("/v1/families", json={"name": "Once"}, headers=headers),
                range(4),
            )
        )
    assert first.status_code == 201
    assert first.headers["idempotent-replayed"] == "false"
    assert [r.json() for r in repeats] == [first.json()] * 4
    assert [r.headers["idempotent-replayed"] for r in repeats] == ["true"] * 4
    assert _heads(app_container) == heads
    reused = client.post("/v1/families", json={"name": "Other"}, headers=headers)
    assert reused.status_code == 409  # the key's earlier use is state: a conflict
    assert reused.json()["code"] == "idempotency_key_reused"
    assert _heads(app_container) == heads


def test_cart_to_order_over_http(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    catalog = published_catalog(app_container.bus, f"c-{uuid.uuid4().hex[:6]}", prices=(250, 99))
    customer = _auth(app_container, f"cust-{uuid.uuid4().hex[:6]}", "customer")
    cart = client.post("/v1/carts", json={"currency": "USD"}, headers=customer)
    assert cart.status_code == 201
    cart_id = cart.json()["id"]
    for version, icon_id in enumerate(catalog.icon_ids, start=2):
        added = client.post(
            f"/v1/carts/{cart_id}/lines",
            json={"product_kind": "icon", "product_id": str(icon_id)},
            headers=customer,
        )
        assert added.status_code == 202
        assert added.json()["version"] == version
    again = client.post(
        f"/v1/carts/{cart_id}/lines",
        json={"product_kind": "icon", "product_id": str(catalog.icon_ids[0])},
        headers=customer,
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_in_cart"
    order = client.post(f"/v1/carts/{cart_id}/checkout", headers=customer)
    assert order.status_code == 201
    assert order.json()["version"] == 1
    placed = app_container.applications.commerce.repository.get(uuid.UUID(order.json()["id"]))
    assert placed.total.amount_minor == 349
    assert placed.customer_id == client.get("/v1/auth/me", headers=customer).json()["id"]
    closed = client.post(
        f"/v1/carts/{cart_id}/lines",
        json={"product_kind": "set", "product_id": str(catalog.set_id)},
        headers=customer,
    )
    assert closed.status_code == 409
    assert closed.json()["code"] == "cart_closed"
    cancelled = client.post(f"/v1/orders/{order.json()['id']}/cancel", headers=customer)
    assert cancelled.status_code == 202
    assert cancelled.json()["version"] == 2
    twice = client.post(f"/v1/orders/{order.json()['id']}/cancel", headers=customer)
    assert twice.status_code == 409
    assert twice.json()["code"] == "illegal_transition"
    assert (twice.json()["from_state"], twice.json()["to_state"]) == ("cancelled", "cancelled")
