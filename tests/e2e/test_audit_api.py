"""On the shared store, through a real API process: a customer's cart story read back by an
auditor exactly as the commands reported it, and `audit verify` clean over the whole store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from commands.policy import Actor
from infra.bootstrap import Container, bootstrap
from tests.e2e.test_run import _wait_for_log
from tests.support import free_port, log_heads, published_catalog


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[str, Container]]:
    port = free_port()
    env = {**os.environ, "ICONMARKET_API_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "api"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        bufsize=0,
    )
    container = bootstrap()
    try:
        _wait_for_log(proc, "Application startup complete", timeout_s=90)
        yield f"http://127.0.0.1:{port}", container
    finally:
        container.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def _bearer(container: Container, who: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(who, frozenset(roles))).access_token
    return {"Authorization": f"Bearer {token}"}


def test_an_auditor_reads_a_cart_story_exactly_as_the_commands_reported_it(
    api: tuple[str, Container],
) -> None:
    base, container = api
    tag = uuid.uuid4().hex[:6]
    catalog = published_catalog(container.bus, f"e2e-audit-owner-{tag}")
    customer = f"e2e-audit-{tag}"
    heads = log_heads(container.applications)
    shopper = _bearer(container, customer, "customer")
    auditor = _bearer(container, f"e2e-auditor-{tag}", "auditor")
    with httpx.Client(base_url=base, timeout=60) as client:
        opened = client.post("/v1/carts", json={"currency": "USD"}, headers=shopper).json()
        cart = opened["id"]
        added = client.post(
            f"/v1/carts/{cart}/lines",
            json={"product_kind": "icon", "product_id": str(catalog.icon_ids[0])},
            headers=shopper,
        ).json()
        placed = client.post(f"/v1/carts/{cart}/checkout", headers=shopper).json()

        history = client.get(f"/v1/audit/aggregates/{cart}/events", headers=auditor)
        assert history.status_code == 200, history.text
        events = history.json()["events"]
        assert [(e["type"], e["aggregate_version"]) for e in events] == [
            ("Cart.Opened", 1),
            ("Cart.LineAdded", 2),
            ("Cart.CheckedOut", 3),
        ]
        assert [e["position"] for e in events[:2]] == [opened["position"], added["position"]]
        assert events[2]["position"] < placed["position"]
        assert {e["actor"] for e in events} == {customer}

        state = client.get(
            f"/v1/audit/aggregates/{cart}/state", params={"version": 2}, headers=auditor
        ).json()
        assert (state["version"], state["state"]["order_id"]) == (2, None)
        assert [line["product_id"] for line in state["state"]["lines"]] == [
            str(catalog.icon_ids[0])
        ]
        now = client.get(f"/v1/audit/aggregates/{cart}/state", headers=auditor).json()
        assert (now["version"], now["state"]["order_id"]) == (3, placed["id"])

        mine = client.get(
            "/v1/audit/log",
            params={
                "context": "commerce",
                "actor": customer,
                "from_position": heads["commerce"] + 1,
            },
            headers=auditor,
        ).json()
        assert [(e["type"], e["position"]) for e in mine["events"]] == [
            ("Cart.Opened", opened["position"]),
            ("Cart.LineAdded", added["position"]),
            ("Cart.CheckedOut", events[2]["position"]),
            ("Order.Placed", placed["position"]),
        ]
        refused = client.get(f"/v1/audit/aggregates/{cart}/events", headers=shopper)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")


def test_verify_is_clean_on_the_shared_store() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "audit", "verify", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(result.stdout)
    assert (result.returncode, report["breaks"]) == (0, [])
    logs = {log["context"]: log for log in report["logs"]}
    assert set(logs) == {"catalog", "commerce", "identity", "audit"}
    assert logs["commerce"]["events"] > 0
