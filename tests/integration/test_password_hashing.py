"""A login flood cannot stall the commands: passwords are checked on hashing threads of their
own (ICONMARKET_PASSWORD_HASH_WORKERS, here 2) with a bounded queue (here 2), and a login or
registration that finds them all taken is refused at once with 503 ``password_hashing_busy``.

The flood is made exact by holding every password check at a gate: more logins than the
command threads (32) arrive together; exactly workers + queue of them are admitted and wait at
the gate, the others are refused at once, and a command sent meanwhile completes. Were the
checks on the command threads (the default executor), the held logins would take them all and
the command would wait for the gate."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from litestar.testing import TestClient

import commands.password_hashing as hashing
from api.app import COMMAND_THREADS, create_app
from commands.policy import Actor
from domain.account import Account
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from tests.support import appended_since, eventually, log_heads

pytestmark = pytest.mark.integration

WORKERS, QUEUE = 2, 2
FLOOD = COMMAND_THREADS + 8


@pytest.fixture
def app(settings: Settings) -> Iterator[tuple[TestClient, Container]]:  # type: ignore[type-arg]
    own = dataclasses.replace(
        settings,
        password_hash_workers=WORKERS,
        password_hash_queue=QUEUE,
        rate_limit_enabled=False,  # this test is about the hashing threads, not the budgets
    )
    container = bootstrap(own)
    try:
        with TestClient(create_app(container)) as client:
            yield client, container
    finally:
        container.close()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every password check waits until the gate opens (always opened at the end)."""
    opened = threading.Event()
    check = hashing.password_matches

    def held(password_hash: str, password: str) -> bool:
        assert opened.wait(timeout=60), "the gate was never opened"
        return check(password_hash, password)

    monkeypatch.setattr(hashing, "password_matches", held)
    try:
        yield opened
    finally:
        opened.set()


def _login(client: TestClient) -> Any:  # type: ignore[type-arg]
    body = {"email": f"flood-{uuid.uuid4().hex}@example.com", "password": "not the password"}
    began = time.monotonic()
    response = client.post("/v1/auth/token", json=body)
    return response, time.monotonic() - began


def test_a_login_flood_is_refused_at_once_beyond_the_queue_and_commands_still_run(
    app: tuple[TestClient, Container],  # type: ignore[type-arg]
    gate: threading.Event,
) -> None:
    client, container = app
    contributor = Actor(f"flood-{uuid.uuid4().hex[:8]}", frozenset({"contributor"}))
    token = container.tokens.issue(contributor).access_token
    with ThreadPoolExecutor(max_workers=FLOOD + 1) as pool:
        logins = [pool.submit(_login, client) for _ in range(FLOOD)]
        eventually(lambda: sum(f.done() for f in logins) >= FLOOD - WORKERS - QUEUE, 10)

        try:
            command = pool.submit(
                client.post,
                "/v1/families",
                json={"name": "Under a flood"},
                headers={"Authorization": f"Bearer {token}"},
            )
            created = command.result(timeout=15)  # the gate is still closed
            waiting = [f for f in logins if not f.done()]
        finally:
            gate.set()
        admitted = [f.result(timeout=30) for f in waiting]
        refused = [f.result() for f in logins if f not in waiting]

    assert created.status_code == 201, created.text
    assert len(admitted) == WORKERS + QUEUE
    for response, seconds in refused:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        body = response.json()
        assert (body["code"], body["status"]) == ("password_hashing_busy", 503)
        assert seconds < 5
    assert [r.status_code for r, _ in admitted] == [401] * (WORKERS + QUEUE)


def test_a_registration_that_finds_the_hashing_threads_full_is_refused_and_appends_nothing(
    app: tuple[TestClient, Container],  # type: ignore[type-arg]
) -> None:
    client, container = app
    opened = threading.Event()
    held = [container.password_hashing.submit(opened.wait, 30) for _ in range(WORKERS + QUEUE)]
    try:
        email = f"busy-{uuid.uuid4().hex}@example.com"
        correlation_id = f"busy-{uuid.uuid4().hex}"
        heads = log_heads(container.applications)

        response = client.post(
            "/v1/auth/register",
            json={"email": email, "password": "a long enough password"},
            headers={"X-Correlation-ID": correlation_id},
        )

        assert response.status_code == 503, response.text
        assert response.json()["code"] == "password_hashing_busy"
        assert response.headers["retry-after"] == "1"
        watched = {Account.create_id(email)}
        assert appended_since(container.applications, heads, correlation_id, watched) == []
    finally:
        opened.set()
    for future in held:
        future.result(timeout=30)
    # The places came back: the same registration now goes through.
    again = client.post(
        "/v1/auth/register", json={"email": email, "password": "a long enough password"}
    )
    assert again.status_code == 202, again.text
