"""Fault: Redis, which holds the rate-limit counters, is frozen (SIGSTOP, always resumed) while
a command arrives. Failing open (ICONMARKET_RATE_LIMIT_FAIL_OPEN=true, the default) the command
is served unmetered once the check's bound has passed, with a warning logged and counted;
failing closed it is refused with 503 ``rate_limiter_unavailable`` and Retry-After, and nothing
is appended. Either way the answer comes within the bound, and once Redis is back the budgets
are metered again.

Failing open serves what needs no session only: the sessions of signed-in callers are in Redis
too, and they fail closed (503 ``sessions_unavailable``, api/sessions.py), so the served command
is a registration (anonymous) and a signed-in caller's command is refused."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from api.app import create_app
from commands.policy import Actor
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from tests.faults.harness import paused
from tests.support import appended_since, log_heads

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.3
METRIC = "iconmarket_rate_limiter_unavailable_total"


@contextmanager
def app(settings: Settings, *, fail_open: bool) -> Iterator[tuple[TestClient, Container]]:  # type: ignore[type-arg]
    own = dataclasses.replace(
        settings,
        rate_limit_prefix=f"test-rl-fault-{uuid.uuid4().hex[:12]}",
        rate_limit_fail_open=fail_open,
        rate_limit_timeout_s=TIMEOUT_S,
    )
    container = bootstrap(own)
    try:
        with TestClient(create_app(container)) as client:
            yield client, container
    finally:
        container.close()


@contextmanager
def warnings_of(name: str) -> Iterator[list[logging.LogRecord]]:
    """The warnings ``name`` logs within the block (the app's log setup replaces the root
    logger's handlers, so pytest's capture would not see them)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _unavailable(outcome: str) -> float:
    return REGISTRY.get_sample_value(METRIC, {"outcome": outcome}) or 0.0


def _create_family(
    client: TestClient, container: Container, correlation_id: str
) -> tuple[httpx.Response, float]:  # type: ignore[type-arg]
    actor = Actor(f"fault-{uuid.uuid4().hex[:8]}", frozenset({"contributor"}))
    headers = {
        "Authorization": f"Bearer {container.tokens.issue(actor).access_token}",
        "X-Correlation-ID": correlation_id,
    }
    began = time.monotonic()
    response = client.post("/v1/families", json={"name": "Frozen"}, headers=headers)
    return response, time.monotonic() - began


def _register(client: TestClient, correlation_id: str) -> tuple[httpx.Response, float]:  # type: ignore[type-arg]
    body = {"email": f"fault-{uuid.uuid4().hex}@example.com", "password": "a long fault pass"}
    began = time.monotonic()
    response = client.post(
        "/v1/auth/register", json=body, headers={"X-Correlation-ID": correlation_id}
    )
    return response, time.monotonic() - began


def test_failing_open_serves_the_command_unmetered_and_says_so(settings: Settings) -> None:
    with app(settings, fail_open=True) as (client, container):
        warm, _ = _create_family(client, container, f"fault-{uuid.uuid4().hex}")
        assert "ratelimit" in warm.headers  # Redis up: metered
        before = _unavailable("open")
        correlation_id = f"fault-{uuid.uuid4().hex}"
        heads = log_heads(container.applications)

        with warnings_of("iconmarket.ratelimit") as warnings, paused(settings, "redis"):
            response, seconds = _register(client, correlation_id)
            signed_in, _ = _create_family(client, container, correlation_id)

        assert response.status_code == 202, response.text
        assert "ratelimit" not in response.headers
        assert TIMEOUT_S <= seconds < TIMEOUT_S + 3
        assert _unavailable("open") == before + 2
        assert [
            (r.getMessage(), r.__dict__["outcome"], r.__dict__["budget"]) for r in warnings
        ] == [("rate limiter unavailable", "open", "auth")]  # one warning per 10 s
        assert signed_in.status_code == 503, signed_in.text
        assert signed_in.json()["code"] == "sessions_unavailable"
        stored = appended_since(container.applications, heads, correlation_id)
        assert [e.name for e in stored] == ["Account.Registered"]
        again, _ = _create_family(client, container, f"fault-{uuid.uuid4().hex}")
        assert again.status_code == 201
        assert "ratelimit" in again.headers


def test_failing_closed_refuses_the_command_and_appends_nothing(settings: Settings) -> None:
    with app(settings, fail_open=False) as (client, container):
        warm, _ = _create_family(client, container, f"fault-{uuid.uuid4().hex}")
        assert warm.status_code == 201
        before = _unavailable("closed")
        correlation_id = f"fault-{uuid.uuid4().hex}"
        heads = log_heads(container.applications)

        with paused(settings, "redis"):
            response, seconds = _create_family(client, container, correlation_id)

        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert (body["status"], body["code"]) == (503, "rate_limiter_unavailable")
        assert TIMEOUT_S <= seconds < TIMEOUT_S + 3
        assert _unavailable("closed") == before + 1
        assert appended_since(container.applications, heads, correlation_id) == []
        again, _ = _create_family(client, container, f"fault-{uuid.uuid4().hex}")
        assert again.status_code == 201
