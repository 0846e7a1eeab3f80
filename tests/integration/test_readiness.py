"""/health/ready tells the truth: a stopped service is reported down by name, then up again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from infra.bootstrap import bootstrap
from infra.settings import Settings
from infra.stack import manager
from infra.stack.base import StackContext

ALL = ["postgres", "redis", "kafka", "opensearch", "s3", "stripe"]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(bootstrap(settings))) as test_client:
        yield test_client


def test_ready_lists_every_dependency_up(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ready"
    assert body["down"] == []
    assert [d["name"] for d in body["dependencies"]] == ALL
    assert all(d["status"] == "up" and d["latency_ms"] > 0 for d in body["dependencies"])


def test_a_stopped_service_turns_ready_into_503_naming_it(
    client: TestClient,  # type: ignore[type-arg]
    settings: Settings,
) -> None:
    ctx = StackContext.from_settings(settings)
    messages: list[str] = []
    manager.down(ctx, ["redis"], messages.append)
    try:
        assert manager.running_pid(manager.select(["redis"])[0], ctx) is None
        response = client.get("/health/ready")
        body = response.json()
        assert response.status_code == 503
        assert body["status"] == "down"
        assert body["down"] == ["redis"]
        redis_row = next(d for d in body["dependencies"] if d["name"] == "redis")
        assert redis_row["status"] == "down"
        assert "Connection" in redis_row["error"]
    finally:
        manager.up(ctx, ["redis"], messages.append)
    assert client.get("/health/ready").status_code == 200
    assert messages[0].startswith("redis: stopped (pid ")
