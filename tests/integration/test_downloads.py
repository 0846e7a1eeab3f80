"""Downloads over HTTP on the real event store and MinIO: a free icon's renderings for any
customer, paid icons and SVG originals only with an entitlement (bought through the real
checkout and payment commands), each download recorded, then a 302 to a presigned URL whose
bytes are the stored file; every refusal is a problem with nothing recorded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest
from eventsourcing.application import AggregateNotFoundError
from litestar.testing import TestClient

from api.app import create_app
from commands import messages as m
from commands.policy import Actor
from domain.library import Library
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from pipelines.derivatives import MediaStores, RenderJob, produce
from pipelines.media_worker import service_context
from pipelines.render import RENDERER_VERSION, content_hash
from tests.support import appended_since, ctx, log_heads

pytestmark = pytest.mark.integration

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture(scope="module")
def app_container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(settings)
    yield built
    built.close()


@pytest.fixture(scope="module")
def client(app_container: Container) -> Iterator[Client]:
    with TestClient(create_app(app_container)) as test_client:
        yield test_client


@dataclass(frozen=True)
class Shop:
    paid: UUID
    free: UUID
    svgs: dict[UUID, bytes]


def _svg(colour: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24">'
        f"<!-- {uuid.uuid4().hex} -->"
        f'<path d="M4 12h16" stroke="{colour}" stroke-width="2"/></svg>'
    ).encode()


def _icon(container: Container, set_id: UUID, name: str, price: int, svg: bytes) -> UUID:
    owner = ctx(OWNER, "contributor")
    bus = container.bus
    icon_id = bus.execute(
        m.CreateIcon(set_id=set_id, name=name, price=m.Money(amount_minor=price, currency="USD")),
        owner,
    ).aggregate_id
    digest = content_hash(svg)
    key = f"originals/{digest}.svg"
    container.private_store.put_bytes(key, svg, content_type="image/svg+xml")
    original = m.SvgOriginal(key=key, content_hash=digest, size_bytes=len(svg), width=24, height=24)
    bus.execute(m.RecordOriginal(icon_id=icon_id, original=original), owner)
    stores = MediaStores(container.private_store, container.public_store)
    produced = produce(RenderJob(icon_id, digest, key), stores)
    bus.execute(produced.command(), service_context("test-downloads"))
    bus.execute(m.PublishIcon(icon_id=icon_id), owner)
    return icon_id


OWNER = f"dl-owner-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def shop(app_container: Container) -> Shop:
    owner = ctx(OWNER, "contributor")
    bus = app_container.bus
    family_id = bus.execute(m.CreateFamily(name="Downloads"), owner).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="Download Line", style="line"), owner
    ).aggregate_id
    svgs = {}
    paid_svg, free_svg = _svg("#123456"), _svg("#654321")
    paid = _icon(app_container, set_id, "paid arrow", 500, paid_svg)
    free = _icon(app_container, set_id, "free arrow", 0, free_svg)
    svgs[paid], svgs[free] = paid_svg, free_svg
    bus.execute(m.PublishIconSet(set_id=set_id), owner)
    bus.execute(m.PublishFamily(family_id=family_id), owner)
    return Shop(paid, free, svgs)


def _auth(container: Container, actor: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(actor, frozenset(roles))).access_token
    return {"Authorization": f"Bearer {token}", "X-Correlation-ID": f"dl-{uuid.uuid4().hex}"}


def _buy(container: Container, customer: str, icon_id: UUID, price: int) -> None:
    """Cart → checkout → payment (settled as the payment service would on Stripe's webhook)."""
    who = ctx(customer, "customer")
    bus = container.bus
    cart_id = bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who)
    order_id = bus.execute(m.CheckOut(cart_id=cart_id), who).aggregate_id
    started = bus.execute(m.StartPayment(order_id=order_id), who).aggregate_id
    if price:
        bus.execute(
            m.SettlePayment(
                transaction_id=started,
                provider_reference=f"pi_test_{uuid.uuid4().hex[:12]}",
                captured=m.Money(amount_minor=price, currency="USD"),
            ),
            ctx("service:payments", "service"),
        )
    library = container.applications.commerce.repository.get(Library.create_id(customer))
    assert isinstance(library, Library)
    assert library.is_entitled(icon_id)


def _download(
    client: Client, headers: dict[str, str], icon_id: UUID, **params: str | int
) -> httpx.Response:
    response: httpx.Response = client.get(
        f"/v1/icons/{icon_id}/download", params=params, headers=headers, follow_redirects=False
    )
    return response


def _fetch(url: str) -> bytes:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.content


def _downloads(container: Container, heads: dict[str, int], correlation: str) -> list[str]:
    return [a.name for a in appended_since(container.applications, heads, correlation)]


def test_a_free_icon_downloads_for_any_customer_and_is_recorded(
    client: Client, app_container: Container, shop: Shop
) -> None:
    customer = f"dl-cust-{uuid.uuid4().hex[:6]}"
    headers = _auth(app_container, customer, "customer")
    heads = log_heads(app_container.applications)

    response = _download(client, headers, shop.free, format="png", size=128)

    assert response.status_code == 302, response.text
    url = response.headers["location"]
    body = response.json()
    assert body["url"] == url
    assert (body["format"], body["size"], body["expires_in_s"]) == ("png", 128, 300)
    digest = content_hash(shop.svgs[shop.free])
    key = f"derivatives/{digest}/{RENDERER_VERSION}/png-128.png"
    stored = app_container.private_store.get_bytes(key)
    assert _fetch(url) == stored
    assert body["size_bytes"] == len(stored)
    assert "free-arrow-128.png" in url  # the Content-Disposition file name
    names = _downloads(app_container, heads, headers["X-Correlation-ID"])
    assert names == ["Library.Opened", "Library.DownloadRecorded"]
    library = app_container.applications.commerce.repository.get(Library.create_id(customer))
    assert isinstance(library, Library)
    assert library.download_count == 1
    assert body["position"] == max(
        a.position
        for a in appended_since(app_container.applications, heads, headers["X-Correlation-ID"])
    )


def test_refusals_are_problems_and_record_nothing(
    client: Client, app_container: Container, shop: Shop
) -> None:
    customer = f"dl-cust-{uuid.uuid4().hex[:6]}"
    headers = _auth(app_container, customer, "customer")
    heads = log_heads(app_container.applications)
    cases = [
        (headers, shop.paid, {"format": "png"}, 403, "not_entitled"),
        (headers, shop.free, {"format": "svg"}, 403, "not_entitled"),
        (headers, shop.free, {"format": "png", "size": 100}, 404, "format_unavailable"),
        (headers, shop.free, {"format": "gif"}, 422, "validation_failed"),
        (headers, uuid.uuid4(), {"format": "png"}, 404, "not_found"),
        (
            {**headers, "Idempotency-Key": "not a key!"},
            shop.free,
            {"format": "png"},
            422,
            "validation_failed",
        ),
        ({}, shop.free, {"format": "png"}, 401, "unauthenticated"),
        (
            _auth(app_container, OWNER, "contributor"),
            shop.free,
            {"format": "png"},
            403,
            "forbidden",
        ),
    ]
    for who, icon_id, params, status, code in cases:
        response = _download(client, who, icon_id, **params)
        assert response.status_code == status, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "location" not in response.headers
        assert response.json()["code"] == code
    assert _downloads(app_container, heads, headers["X-Correlation-ID"]) == []
    with pytest.raises(AggregateNotFoundError):  # not even opened
        app_container.applications.commerce.repository.get(Library.create_id(customer))


def test_an_entitled_customer_downloads_the_svg_original_and_every_rendering(
    client: Client, app_container: Container, shop: Shop
) -> None:
    customer = f"dl-buyer-{uuid.uuid4().hex[:6]}"
    _buy(app_container, customer, shop.paid, 500)
    headers = _auth(app_container, customer, "customer")
    heads = log_heads(app_container.applications)

    svg = _download(client, headers, shop.paid, format="svg")
    assert svg.status_code == 302, svg.text
    assert _fetch(svg.headers["location"]) == shop.svgs[shop.paid]
    pdf = _download(client, headers, shop.paid, format="pdf")
    assert pdf.status_code == 302, pdf.text
    assert _fetch(pdf.headers["location"]).startswith(b"%PDF-")
    webp = _download(client, headers, shop.paid, format="webp")
    assert (webp.json()["format"], webp.json()["size"]) == ("webp", 256)
    assert _fetch(webp.headers["location"])[:4] == b"RIFF"
    png = _download(client, headers, shop.paid)  # png, the largest size by default
    assert png.json()["size"] == 256

    names = _downloads(app_container, heads, headers["X-Correlation-ID"])
    assert names == ["Library.DownloadRecorded"] * 4
    library = app_container.applications.commerce.repository.get(Library.create_id(customer))
    assert isinstance(library, Library)
    assert library.download_count == 4


def test_a_free_order_entitles_to_the_svg_original(
    client: Client, app_container: Container, shop: Shop
) -> None:
    customer = f"dl-free-{uuid.uuid4().hex[:6]}"
    _buy(app_container, customer, shop.free, 0)
    response = _download(
        client, _auth(app_container, customer, "customer"), shop.free, format="svg"
    )
    assert response.status_code == 302, response.text
    assert _fetch(response.headers["location"]) == shop.svgs[shop.free]
