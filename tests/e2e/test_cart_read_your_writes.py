"""HTTP command → event store → relay → Kafka → cart projection → HTTP query, with real processes;
the query carries the command's position and never sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import httpx

from commands.messages import OpenCart
from commands.policy import Actor
from infra.bootstrap import Container, bootstrap
from infra.settings import load_settings
from tests.e2e.test_run import _wait_for_log, running_app
from tests.faults.harness import scratch_container
from tests.support import ctx, free_port, published_catalog


def test_a_cart_change_is_readable_at_the_position_the_command_returned() -> None:
    container = bootstrap()
    catalog = published_catalog(container.bus, f"e2e-{uuid.uuid4().hex[:6]}", prices=(250, 99))
    customer = f"e2e-cust-{uuid.uuid4().hex[:6]}"
    auth = {
        "Authorization": "Bearer "
        + container.tokens.issue(Actor(customer, frozenset({"customer"}))).access_token
    }
    stranger = {
        "Authorization": "Bearer "
        + container.tokens.issue(Actor("someone-else", frozenset({"customer"}))).access_token
    }
    container.close()
    with running_app(read_timeout_s=60) as base, httpx.Client(base_url=base, timeout=90) as client:
        opened = client.post("/v1/carts", json={"currency": "USD"}, headers=auth).json()
        cart_id = opened["id"]
        last = opened
        for icon_id in catalog.icon_ids:
            last = client.post(
                f"/v1/carts/{cart_id}/lines",
                json={"product_kind": "icon", "product_id": str(icon_id)},
                headers=auth,
            ).json()
        cart = client.get(
            f"/v1/carts/{cart_id}", params={"min_position": last["position"]}, headers=auth
        )
        assert cart.status_code == 200, cart.text
        body = cart.json()
        assert body["version"] == 3
        assert body["position"] == last["position"]
        assert cart.headers["x-projection-position"] == str(last["position"])
        assert body["owner_id"] == customer
        assert body["status"] == "open"
        assert body["total"] == {"amount_minor": 349, "currency": "USD"}
        assert sorted(line["product_id"] for line in body["lines"]) == sorted(
            str(icon_id) for icon_id in catalog.icon_ids
        )
        mine = client.get("/v1/carts/me", headers={**auth, "X-Min-Position": str(last["position"])})
        assert mine.status_code == 200, mine.text
        assert mine.json() == body
        assert client.get("/v1/carts/me", headers=stranger).json()["code"] == "not_found"
        removed = client.delete(
            f"/v1/carts/{cart_id}/lines/icon/{catalog.icon_ids[0]}", headers=auth
        ).json()
        after = client.get(
            f"/v1/carts/{cart_id}", headers={**auth, "X-Min-Position": str(removed["position"])}
        ).json()
        assert after["total"] == {"amount_minor": 99, "currency": "USD"}
        assert after["version"] == 4
        forbidden = client.get(f"/v1/carts/{cart_id}", headers=stranger)
        assert forbidden.status_code == 403
        assert forbidden.json()["code"] == "forbidden"
        # A command that writes nothing (clearing an empty cart) answers a position that can be
        # waited on; min_position=0 on a cart with no document answers 404 at once.
        empty = client.post("/v1/carts", json={"currency": "USD"}, headers=auth).json()
        cleared = client.delete(f"/v1/carts/{empty['id']}/lines", headers=auth)
        assert cleared.status_code == 202, cleared.text
        assert cleared.json()["version"] == 1
        assert cleared.json()["position"] >= empty["position"]
        unchanged = client.get(
            f"/v1/carts/{empty['id']}",
            params={"min_position": cleared.json()["position"]},
            headers=auth,
        )
        assert unchanged.status_code == 200, unchanged.text
        assert (unchanged.json()["version"], unchanged.json()["lines"]) == (1, [])
        nowhere = client.get(f"/v1/carts/{uuid.uuid4()}", params={"min_position": 0}, headers=auth)
        assert nowhere.status_code == 404, nowhere.text
        assert nowhere.json()["code"] == "not_found"


def test_a_position_not_applied_is_stale_and_one_beyond_the_head_is_refused_at_once() -> None:
    """Only the API runs, on an event store of this test's own that no relay or projection
    reads: a cart opened through the bus is at a position no read model has applied, so a read
    waiting for it answers 503 stale, never the view without it; a position past the log's head
    is answered 422 at once."""
    with scratch_container(load_settings(), "iconmarket_e2e_stale") as container:
        _stale_and_beyond_head(container)


def _stale_and_beyond_head(container: Container) -> None:
    customer = f"e2e-cust-{uuid.uuid4().hex[:6]}"
    actor = Actor(customer, frozenset({"customer"}))
    token = container.tokens.issue(actor).access_token
    opened = container.bus.execute(OpenCart(currency="USD"), ctx(customer, "customer"))
    head = container.applications.commerce.recorder.max_notification_id()
    port = free_port()
    env = {
        **os.environ,
        "ICONMARKET_POSTGRES_DB": container.settings.postgres_db,
        "ICONMARKET_API_PORT": str(port),
        "ICONMARKET_READ_YOUR_WRITES_TIMEOUT_S": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "api"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        bufsize=0,
    )
    auth = {"Authorization": f"Bearer {token}"}
    try:
        _wait_for_log(proc, "Application startup complete", timeout_s=60)
        base = f"http://127.0.0.1:{port}"
        stale = httpx.get(
            f"{base}/v1/carts/{opened.aggregate_id}",
            params={"min_position": opened.position},
            headers=auth,
            timeout=10,
        )
        beyond = httpx.get(
            f"{base}/v1/carts/{opened.aggregate_id}",
            params={"min_position": 10**12},
            headers=auth,
            timeout=10,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert stale.status_code == 503, stale.text
    assert stale.headers["retry-after"] == "1"
    assert stale.json()["code"] == "stale"
    assert stale.json()["min_position"] == opened.position
    assert beyond.status_code == 409, beyond.text
    assert beyond.json()["code"] == "position_beyond_head"
    assert beyond.json()["min_position"] == 10**12
    assert beyond.json()["position"] >= (head or 0)
