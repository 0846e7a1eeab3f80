"""Upload → derivatives → searchable with formats → buy → download, through `iconmarket run`
(API, relay, projections and media workers as real processes), waiting on notifications and
positions, never on sleeps."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from commands.policy import Actor
from domain.icon import Icon
from infra.bootstrap import Container, bootstrap
from pipelines.render import RENDERER_VERSION, content_hash
from projections.positions import ProjectionPositions
from tests.e2e.test_run import running_app

WAIT_S = 300  # the media workers may first work through the whole catalog topic's history
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24">'
    '<path d="M4 12h16M14 6l6 6-6 6" stroke="#1f2937" stroke-width="2" fill="none"/>'
    '<circle cx="6" cy="6" r="2" fill="#e11d48"/><title>{nonce}</title></svg>'
)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[str, Container]]:
    container = bootstrap()
    try:
        with running_app(read_timeout_s=WAIT_S) as base:
            yield base, container
    finally:
        container.close()


def _bearer(container: Container, who: str, role: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(who, frozenset({role}))).access_token
    return {"Authorization": f"Bearer {token}"}


def _ok(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _wait_for_derivatives(container: Container, icon_id: UUID) -> Icon:
    """Block until the media worker recorded the icon's derivatives: each time the catalog
    projection advances (a Redis notification), look at the icon in the event store."""
    pubsub = container.redis.pubsub()
    pubsub.subscribe(ProjectionPositions.channel("catalog"))
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            icon = container.applications.catalog.repository.get(icon_id)
            assert isinstance(icon, Icon)
            if icon.has_current_derivatives:
                return icon
            pubsub.get_message(timeout=5)
    finally:
        pubsub.close()
    raise AssertionError(f"no derivatives for icon {icon_id} after {WAIT_S}s")


def test_an_uploaded_svg_is_rendered_found_with_its_formats_bought_and_downloaded(
    running: tuple[str, Container],
) -> None:
    base, container = running
    owner = f"e2e-media-{uuid.uuid4().hex[:6]}"
    customer = f"e2e-media-cust-{uuid.uuid4().hex[:6]}"
    contributor = _bearer(container, owner, "contributor")
    buyer = _bearer(container, customer, "customer")
    svg = SVG.replace("{nonce}", uuid.uuid4().hex).encode()
    name = f"media arrow {uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=base, timeout=WAIT_S) as client:
        family = _ok(
            client.post("/v1/families", json={"name": "E2E Media"}, headers=contributor), 201
        )
        icon_set = _ok(
            client.post(
                f"/v1/families/{family['id']}/sets",
                json={"name": "E2E Line", "style": "line"},
                headers=contributor,
            ),
            201,
        )
        icon = _ok(
            client.post(
                f"/v1/sets/{icon_set['id']}/icons",
                json={"name": name, "price": {"amount_minor": 0, "currency": "USD"}},
                headers=contributor,
            ),
            201,
        )
        icon_id = UUID(icon["id"])
        uploaded = _ok(
            client.put(
                f"/v1/icons/{icon_id}/svg",
                content=svg,
                headers={**contributor, "Content-Type": "image/svg+xml"},
            ),
            202,
        )
        digest = uploaded["content_hash"]

        rendered = _wait_for_derivatives(container, icon_id)
        assert rendered.renderer_version == RENDERER_VERSION
        sanitised = container.private_store.get_bytes(uploaded["key"])
        assert rendered.original is not None
        assert rendered.original.content_hash == digest == content_hash(sanitised)
        for derivative in rendered.derivatives:
            assert derivative.key.startswith(f"derivatives/{digest}/{RENDERER_VERSION}/")
            assert container.private_store.exists(derivative.key)
        assert rendered.preview_key is not None
        assert container.public_store.exists(rendered.preview_key)

        for path in (f"/v1/icons/{icon_id}/publish", f"/v1/sets/{icon_set['id']}/publish"):
            _ok(client.post(path, headers=contributor), 202)
        published = _ok(
            client.post(f"/v1/families/{family['id']}/publish", headers=contributor), 202
        )
        found = _ok(
            client.get(
                "/v1/icons/search",
                params={"q": name, "set": icon_set["id"]},
                headers={"X-Min-Position": str(published["position"])},
            ),
            200,
        )
        (hit,) = found["hits"]
        assert hit["id"] == str(icon_id)
        assert hit["formats"] == ["pdf", "png", "svg", "webp"]

        cart = _ok(client.post("/v1/carts", json={"currency": "USD"}, headers=buyer), 201)
        _ok(
            client.post(
                f"/v1/carts/{cart['id']}/lines",
                json={"product_kind": "icon", "product_id": str(icon_id)},
                headers=buyer,
            ),
            202,
        )
        order = _ok(client.post(f"/v1/carts/{cart['id']}/checkout", headers=buyer), 201)
        paid = _ok(client.post(f"/v1/orders/{order['id']}/payments", headers=buyer), 201)
        assert paid["status"] == "fulfilled", paid

        for params, expected in (
            ({"format": "svg"}, sanitised),
            (
                {"format": "png", "size": 192},
                container.private_store.get_bytes(
                    f"derivatives/{digest}/{RENDERER_VERSION}/png-192.png"
                ),
            ),
        ):
            link = client.get(
                f"/v1/icons/{icon_id}/download",
                params=params,
                headers=buyer,
                follow_redirects=False,
            )
            assert link.status_code == 302, link.text
            fetched = httpx.get(link.headers["location"], timeout=10)
            assert fetched.status_code == 200
            assert fetched.content == expected
