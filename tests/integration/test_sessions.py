"""Logins that can be cut (api/sessions.py), against the real app, Redis and event store.

A block or role change refuses the tokens issued before it (in the API worker that made it at
once, in every other within ICONMARKET_SESSIONS_CACHE_S); refresh tokens rotate, and a reused
one ends its session; logout ends one; sessions live in Redis, so a new API instance (another
worker, a restart) sees them all; when Redis cannot be read, sessions fail closed (503). Each
module uses a sessions key prefix of its own; accounts get unique e-mails.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from commands import messages as m
from commands.policy import Actor
from domain.account import Account
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from tests.support import appended_since, ctx, eventually, log_heads

PASSWORD = "correct horse battery staple"
CHALLENGE = 'Bearer realm="iconmarket"'
PREFIX = f"sessions-test-{uuid.uuid4().hex[:12]}"
CORRELATION = f"sessions-{uuid.uuid4().hex[:12]}"
"""Sent with the refused writes, so that "nothing appended" ignores other tests' events."""
Client = TestClient[Litestar]


def _settings(settings: Settings, **overrides: Any) -> Settings:
    """The module's own sessions prefix, and no rate limits: its many logins and refreshes
    would spend the auth budget other modules of the run share (tests/conftest.py)."""
    return dataclasses.replace(
        settings, sessions_prefix=PREFIX, **{"rate_limit_enabled": False, **overrides}
    )


@pytest.fixture(scope="module")
def container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(_settings(settings))
    yield built
    built.close()


@pytest.fixture(scope="module")
def client(container: Container) -> Iterator[Client]:
    with TestClient(create_app(container)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def other_worker(settings: Settings) -> Iterator[Client]:
    """A second API instance on the same Redis and store: another worker, or a restart."""
    built = bootstrap(_settings(settings))
    with TestClient(create_app(built)) as test_client:
        yield test_client
    built.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Correlation-Id": CORRELATION}


def _appended(container: Container, heads: dict[str, int], *account_ids: str) -> list[Any]:
    watched = {uuid.UUID(account_id) for account_id in account_ids}
    return appended_since(container.applications, heads, CORRELATION, watched)


def _minted(container: Container, *roles: str) -> str:
    actor = Actor(f"{roles[0]}-{uuid.uuid4().hex[:10]}", frozenset(roles))
    return container.tokens.issue(actor).access_token


def _account(client: Client, roles: tuple[str, ...] = (), by: str = "") -> tuple[str, str]:
    """A new account (a customer, or given ``roles`` by the token ``by``): its id, e-mail."""
    email = f"sessions-{uuid.uuid4().hex}@example.com"
    response = client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 202, response.text
    account_id = str(Account.create_id(email))
    if roles:
        _change_roles(client, by, account_id, list(roles))
    return account_id, email


def _login(client: Client, email: str) -> dict[str, Any]:
    response = client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _refresh(client: Client, refresh_token: str) -> Any:
    return client.post("/v1/auth/token", json={"refresh_token": refresh_token})


def _change_roles(client: Client, by: str, account_id: str, roles: list[str]) -> None:
    response = client.put(
        f"/v1/accounts/{account_id}/roles", json={"roles": roles}, headers=_bearer(by)
    )
    assert response.status_code == 202, response.text


def _me(client: Client, access_token: str) -> Any:
    return client.get("/v1/auth/me", headers=_bearer(access_token))


def _refused(response: Any, status: int = 401, code: str = "unauthenticated") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    if status == 401:
        assert response.headers["www-authenticate"] == CHALLENGE
        assert body["detail"] in {
            "a valid access token is required",
            "a valid refresh token is required",
        }


def test_blocking_a_customer_refuses_the_token_they_hold(
    client: Client, other_worker: Client, container: Container
) -> None:
    account_id, email = _account(client)
    tokens = _login(client, email)
    assert _me(client, tokens["access_token"]).status_code == 200
    assert _me(other_worker, tokens["access_token"]).status_code == 200  # cached there now

    _change_roles(client, _minted(container, "admin"), account_id, ["customer", "denyall"])

    heads = log_heads(container.applications)
    _refused(_me(client, tokens["access_token"]))  # the worker that blocked: at once
    assert eventually(
        lambda: _me(other_worker, tokens["access_token"]).status_code == 401, timeout_s=5
    )
    _refused(_me(other_worker, tokens["access_token"]))
    refused_write = client.post(
        "/v1/families", json={"name": "Blocked"}, headers=_bearer(tokens["access_token"])
    )
    _refused(refused_write)
    assert _appended(container, heads, account_id) == []
    # A new login names the block: the policy refuses it everything.
    again = _login(client, email)
    _refused(_me(client, again["access_token"]), 403, "forbidden")


def test_a_blocked_admin_s_token_cannot_lift_the_block(
    client: Client, container: Container
) -> None:
    superadmin = _minted(container, "superadmin")
    admin_id, email = _account(client, ("admin",), superadmin)
    held = _login(client, email)["access_token"]
    assert _me(client, held).json() == {"id": admin_id, "roles": ["admin"]}

    _change_roles(client, superadmin, admin_id, ["admin", "denyall"])
    other = _account(client)[0]

    heads = log_heads(container.applications)
    lifted = client.put(
        f"/v1/accounts/{admin_id}/roles", json={"roles": ["admin"]}, headers=_bearer(held)
    )
    _refused(lifted)
    _refused(
        client.put(
            f"/v1/accounts/{other}/roles", json={"roles": ["customer"]}, headers=_bearer(held)
        )
    )
    assert _appended(container, heads, admin_id, other) == []


def test_a_role_change_refuses_the_old_token_and_a_refresh_carries_the_new_roles(
    client: Client, other_worker: Client, container: Container
) -> None:
    account_id, email = _account(client)
    first = _login(client, email)

    _change_roles(client, _minted(container, "admin"), account_id, ["contributor", "customer"])

    _refused(_me(client, first["access_token"]))
    assert eventually(
        lambda: _me(other_worker, first["access_token"]).status_code == 401, timeout_s=5
    )
    refreshed = _refresh(client, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert _me(other_worker, refreshed.json()["access_token"]).json() == {
        "id": account_id,
        "roles": ["contributor", "customer"],
    }


def test_a_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
    client: Client, container: Container
) -> None:
    account_id, email = _account(client)
    first = _login(client, email)
    other_session = _login(client, email)

    second = _refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    second_tokens = second.json()
    assert _me(client, second_tokens["access_token"]).json()["id"] == account_id

    heads = log_heads(container.applications)
    _refused(_refresh(client, first["refresh_token"]))  # reused: a copy of a spent token
    _refused(_refresh(client, second_tokens["refresh_token"]))  # its whole family ended
    _refused(_me(client, second_tokens["access_token"]))
    _refused(_me(client, first["access_token"]))
    assert _appended(container, heads, account_id) == []
    # Another login's session is its own.
    assert _me(client, other_session["access_token"]).status_code == 200
    assert _refresh(client, other_session["refresh_token"]).status_code == 200


def test_of_concurrent_refreshes_with_one_token_exactly_one_wins(
    client: Client, other_worker: Client
) -> None:
    _account_id, email = _account(client)
    tokens = _login(client, email)
    start = threading.Barrier(8)

    def refresh(n: int) -> int:
        start.wait()
        worker = client if n % 2 else other_worker
        return int(_refresh(worker, tokens["refresh_token"]).status_code)

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(refresh, range(8)))

    assert statuses == [200] + [401] * 7
    # The others were uses of a spent token: the session ended, the winner's pair too.
    _refused(_me(client, tokens["access_token"]))


def test_logout_ends_the_session_of_the_token_and_no_other(
    client: Client, other_worker: Client, container: Container
) -> None:
    account_id, email = _account(client)
    session = _login(client, email)
    other_session = _login(client, email)
    assert _me(other_worker, session["access_token"]).status_code == 200

    heads = log_heads(container.applications)
    logout = client.post("/v1/auth/logout", headers=_bearer(session["access_token"]))

    assert (logout.status_code, logout.content) == (204, b"")
    assert _appended(container, heads, account_id) == []
    _refused(_me(client, session["access_token"]))
    assert eventually(
        lambda: _me(other_worker, session["access_token"]).status_code == 401, timeout_s=5
    )
    _refused(_refresh(client, session["refresh_token"]))
    _refused(client.post("/v1/auth/logout", headers=_bearer(session["access_token"])))
    assert _me(client, other_session["access_token"]).status_code == 200
    _refused(client.post("/v1/auth/logout"))


def test_sessions_outlive_the_api_instance_that_started_them(
    client: Client, settings: Settings
) -> None:
    _account_id, email = _account(client)
    tokens = _login(client, email)
    spent = _refresh(client, tokens["refresh_token"]).json()

    restarted = bootstrap(_settings(settings))
    try:
        with TestClient(create_app(restarted)) as after_restart:
            assert _me(after_restart, spent["access_token"]).status_code == 200
            rotated = _refresh(after_restart, spent["refresh_token"])
            assert rotated.status_code == 200, rotated.text
            _refused(_refresh(after_restart, tokens["refresh_token"]))  # reuse, seen anew
            _refused(_refresh(after_restart, rotated.json()["refresh_token"]))
    finally:
        restarted.close()


def test_a_change_whose_worker_died_before_redis_heard_of_it_is_read_from_the_store(
    client: Client, container: Container
) -> None:
    """The API worker that changes roles adds a pending field first; if it dies after the
    commit and before it records the new version, checks read the account from the store."""
    account_id, email = _account(client)
    held = _login(client, email)["access_token"]
    sessions = container.sessions
    redis = container.redis
    key = sessions.account_key(account_id)
    redis.hset(key, "pending:died", int((time.time() + 60) * 1000))  # the worker's first step
    result = container.bus.execute(  # its command commits; then it dies
        m.ChangeRoles(account_id=uuid.UUID(account_id), roles=("customer", "denyall")),
        ctx("admin-1", "admin"),
    )
    assert redis.hget(key, "ver") is None

    _refused(_me(client, held))
    assert _int(redis.hget(key, "ver")) == result.version  # a check raised it to the truth
    assert redis.hexists(key, "pending:died")  # still within its horizon

    redis.hset(key, "pending:died", int((time.time() - 1) * 1000))  # past its horizon
    sessions._versions.clear()  # the check's cache (≤ 1 s) would hide the field for a while
    _refused(_me(client, held))
    assert not redis.hexists(key, "pending:died")
    assert _int(redis.hget(key, "ver")) == result.version


def _int(value: Any) -> int:
    return int(value)


def test_without_redis_sessions_fail_closed(settings: Settings, client: Client) -> None:
    account_id, email = _account(client)
    held = _login(client, email)["access_token"]
    down = bootstrap(_settings(settings, redis_port=1))
    try:
        with TestClient(create_app(down)) as without_redis:
            for response in (
                _me(without_redis, held),
                without_redis.post("/v1/families", json={"name": "x"}, headers=_bearer(held)),
                without_redis.post("/v1/auth/token", json={"email": email, "password": PASSWORD}),
                without_redis.post("/v1/auth/logout", headers=_bearer(held)),
            ):
                _refused(response, 503, "sessions_unavailable")
                assert response.headers["retry-after"] == "1"
            # Public reads need no session.
            assert without_redis.get("/health/live").status_code == 200
    finally:
        down.close()
    assert _me(client, held).json()["id"] == account_id
