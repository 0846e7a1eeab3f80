"""/health/ready tells the truth: a stopped service is reported down by name, then up again. It
answers from probes cached for a TTL (so a flood of requests costs one probe round), probes the
paid Stripe API more rarely still, and shows latencies and errors only to an admin. The SMTP
server (the stack's Mailpit) is probed like the others: connect, NOOP, QUIT."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from commands.policy import Actor
from infra.bootstrap import Container, bootstrap
from infra.health import Readiness
from infra.settings import Settings
from infra.stack import manager
from infra.stack.base import StackContext

ALL = ["postgres", "redis", "kafka", "opensearch", "s3", "stripe", "smtp"]


@dataclasses.dataclass
class Ready:
    client: TestClient  # type: ignore[type-arg]
    container: Container
    app: Litestar

    def admin(self) -> dict[str, str]:
        token = self.container.tokens.issue(Actor("health-admin", frozenset({"admin"})))
        return {"Authorization": f"Bearer {token.access_token}"}

    def readiness(self) -> Readiness:
        provided: Any = self.app.dependencies["readiness"]
        found = provided.dependency()
        assert isinstance(found, Readiness)
        return found


def _client(settings: Settings) -> Iterator[Ready]:
    container = bootstrap(settings)
    app = create_app(container)
    with TestClient(app) as test_client:
        yield Ready(test_client, container, app)


@pytest.fixture
def ready(settings: Settings) -> Iterator[Ready]:
    """Probes are never cached: each request probes again (a stopped service shows at once)."""
    yield from _client(dataclasses.replace(settings, health_cache_s=0.0, health_slow_probe_s=0.0))


@pytest.fixture
def cached(settings: Settings) -> Iterator[Ready]:
    yield from _client(dataclasses.replace(settings, health_cache_s=60.0))


def test_ready_lists_every_dependency_up_with_details_for_an_admin_only(ready: Ready) -> None:
    anonymous = ready.client.get("/health/ready")
    admin = ready.client.get("/health/ready", headers=ready.admin())
    customer_token = ready.container.tokens.issue(Actor("health-c", frozenset({"customer"})))
    customer = ready.client.get(
        "/health/ready", headers={"Authorization": f"Bearer {customer_token.access_token}"}
    )
    for response in (anonymous, admin, customer):
        assert response.status_code == 200
        assert response.json()["status"] == "ready"
        assert response.json()["down"] == []
        assert [d["name"] for d in response.json()["dependencies"]] == ALL
    for response in (anonymous, customer):
        assert [sorted(d) for d in response.json()["dependencies"]] == [["name", "status"]] * 7
    assert all(d["status"] == "up" and d["latency_ms"] > 0 for d in admin.json()["dependencies"])


def test_a_stopped_service_turns_ready_into_503_naming_it(ready: Ready, settings: Settings) -> None:
    ctx = StackContext.from_settings(settings)
    messages: list[str] = []
    manager.down(ctx, ["redis"], messages.append)
    try:
        assert manager.running_pid(manager.select(["redis"])[0], ctx) is None
        anonymous = ready.client.get("/health/ready")
        admin = ready.client.get("/health/ready", headers=ready.admin())
        assert (anonymous.status_code, admin.status_code) == (503, 503)
        for response in (anonymous, admin):
            assert response.json()["status"] == "down"
            assert response.json()["down"] == ["redis"]
        assert {"name": "redis", "status": "down"} in anonymous.json()["dependencies"]
        assert [sorted(d) for d in anonymous.json()["dependencies"]] == [["name", "status"]] * 7
        redis_row = next(d for d in admin.json()["dependencies"] if d["name"] == "redis")
        assert redis_row["status"] == "down"
        assert "Connection" in redis_row["error"]
    finally:
        manager.up(ctx, ["redis"], messages.append)
    assert ready.client.get("/health/ready").status_code == 200
    assert messages[0].startswith("redis: stopped (pid ")


def test_an_smtp_server_that_refuses_connections_is_reported_down_by_name(
    settings: Settings,
) -> None:
    """Without stopping the stack's Mailpit: the app is pointed at a port bound by this test
    that never listens (connections are refused), and only "smtp" is down."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        elsewhere = dataclasses.replace(
            settings, smtp_port=port, health_cache_s=0.0, health_slow_probe_s=0.0
        )
        with contextlib.contextmanager(_client)(elsewhere) as ready:
            anonymous = ready.client.get("/health/ready")
            admin = ready.client.get("/health/ready", headers=ready.admin())
    assert (anonymous.status_code, admin.status_code) == (503, 503)
    assert anonymous.json()["down"] == admin.json()["down"] == ["smtp"]
    assert {"name": "smtp", "status": "down"} in anonymous.json()["dependencies"]
    smtp_row = next(d for d in admin.json()["dependencies"] if d["name"] == "smtp")
    assert smtp_row["error"].startswith("ConnectionRefusedError")


def test_concurrent_requests_share_one_probe_round(cached: Ready) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda _: cached.client.get("/health/ready").status_code, range(40))
        )
    assert statuses == [200] * 40
    assert cached.readiness().rounds == 1


def test_stripe_is_probed_only_every_slow_ttl(container: Container) -> None:
    now = [0.0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        readiness = Readiness(container, pool, ttl_s=1.0, slow_ttl_s=60.0, clock=lambda: now[0])
        first = {r.name: r for r in readiness.results()}
        now[0] = 1.5  # past the TTL, not the slow one
        second = {r.name: r for r in readiness.results()}
        now[0] = 61.0
        third = {r.name: r for r in readiness.results()}
    assert readiness.rounds == 3
    assert second["stripe"] is first["stripe"]  # the same result: Stripe was not called again
    assert all(second[name] is not first[name] for name in ALL if name != "stripe")
    assert third["stripe"] is not first["stripe"]
    assert all(r.up for r in third.values())
