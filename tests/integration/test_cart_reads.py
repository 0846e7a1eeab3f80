"""A cart read checks ownership before it waits or reads: another customer asking for a cart
the view does not have yet (its write is not projected: no relay runs here) is refused at once
with 403, a cart that does not exist is 404 at once, and only the owner waits (and, with nothing
projecting, gets 503 stale)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from commands import messages as m
from commands.policy import Actor
from infra.bootstrap import Container
from infra.settings import Settings
from tests.faults.harness import scratch_container
from tests.support import ctx


@pytest.fixture(scope="module")
def app_container(settings: Settings) -> Iterator[Container]:
    """An event store of this module's own, which no relay or projection ever reads."""
    quick = dataclasses.replace(settings, read_your_writes_timeout_s=0.3)
    with scratch_container(quick, "iconmarket_cart_reads") as built:
        yield built


@pytest.fixture(scope="module")
def client(app_container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(app_container)) as test_client:
        yield test_client


def _auth(container: Container, actor: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(actor, frozenset({"customer"}))).access_token
    return {"Authorization": f"Bearer {token}"}


def test_ownership_is_checked_before_waiting_for_an_unprojected_cart(
    client: TestClient,  # type: ignore[type-arg]
    app_container: Container,
) -> None:
    owner, other = f"reads-owner-{uuid.uuid4().hex[:8]}", f"reads-other-{uuid.uuid4().hex[:8]}"
    opened = app_container.bus.execute(m.OpenCart(currency="USD"), ctx(owner, "customer"))
    path = f"/v1/carts/{opened.aggregate_id}?min_position={opened.position}"

    stranger = client.get(path, headers=_auth(app_container, other))
    missing = client.get(
        f"/v1/carts/{uuid.uuid4()}?min_position={opened.position}",
        headers=_auth(app_container, other),
    )
    mine = client.get(path, headers=_auth(app_container, owner))

    assert (stranger.status_code, stranger.json()["code"]) == (403, "forbidden")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (mine.status_code, mine.json()["code"]) == (503, "stale")
