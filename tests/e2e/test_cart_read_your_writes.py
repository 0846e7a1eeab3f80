"""HTTP command → event store → relay → Kafka → cart projection → HTTP query, with real processes;
the query carries the command's position and never sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import httpx

from commands.policy import Actor
from infra.bootstrap import bootstrap
from tests.e2e.test_run import _free_port, _wait_for_log, running_app
from tests.support import published_catalog


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


def test_a_position_never_reached_is_answered_stale_not_with_old_data() -> None:
    container = bootstrap()
    catalog = published_catalog(container.bus, f"e2e-{uuid.uuid4().hex[:6]}", prices=(100,))
    del catalog
    customer = f"e2e-cust-{uuid.uuid4().hex[:6]}"
    token = container.tokens.issue(Actor(customer, frozenset({"customer"}))).access_token
    container.close()
    port = _free_port()
    env = {
        **os.environ,
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
    try:
        _wait_for_log(proc, "Application startup complete", timeout_s=60)
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/carts/{uuid.uuid4()}",
            params={"min_position": 10**12},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "stale"
    assert response.json()["min_position"] == 10**12
