"""Bearer tokens against the real app: only a valid, unexpired HS256 access token of ours passes.

Every refusal is a 401 ``unauthenticated`` problem with a ``WWW-Authenticate`` challenge, and a
refused command appends nothing. Accounts get unique e-mails: the store persists between runs.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import TokenService, bearer_token
from commands.errors import Unauthenticated
from commands.policy import Actor
from domain.account import Account
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from tests.support import appended_since, log_heads

PASSWORD = "correct horse battery staple"
CHALLENGE = 'Bearer realm="iconmarket"'
# An endpoint that reads and one that writes; a contributor's valid token passes both.
ME = ("GET", "/v1/auth/me", None)
CREATE_FAMILY = ("POST", "/v1/families", {"name": "Tokens"})
ENDPOINTS = [pytest.param(ME, id="getMe"), pytest.param(CREATE_FAMILY, id="createFamily")]


@pytest.fixture(scope="module")
def container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(settings)
    yield built
    built.close()


@pytest.fixture(scope="module")
def client(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(container)) as test_client:
        yield test_client


def _email() -> str:
    return f"jwt-{uuid.uuid4().hex}@example.com"


def _claims(settings: Settings, actor_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "iconmarket",
        "sub": actor_id,
        "roles": ["contributor"],
        "typ": "access",
        "iat": now,
        "exp": now + settings.jwt_access_ttl_s,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


ACCESS_REFUSED = "a valid access token is required"
REFRESH_REFUSED = "a valid refresh token is required"


def _reason(container: Container, authorization: str, kind: str = "access") -> str:
    """What the service found wrong with ``authorization`` (logged; never told the caller)."""
    with pytest.raises(Unauthenticated) as refused:
        container.tokens.verify(bearer_token(authorization), kind=kind)
    return refused.value.reason


def _unauthenticated(response: Any, detail: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == CHALLENGE
    body = response.json()
    assert (body["status"], body["code"], body["title"]) == (401, "unauthenticated", "Unauthorized")
    assert body["detail"] == detail


def _call_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    endpoint: tuple[str, str, dict[str, Any] | None],
    authorization: str,
    reason: str,
) -> None:
    """The call is refused with the one public 401 (nothing appended); the service's reason,
    kept for the logs, is ``reason``."""
    method, path, body = endpoint
    correlation_id = f"jwt-{uuid.uuid4().hex}"
    heads = log_heads(container.applications)

    response = client.request(
        method,
        path,
        json=body,
        headers={"Authorization": authorization, "X-Correlation-ID": correlation_id},
    )

    _unauthenticated(response, ACCESS_REFUSED)
    assert appended_since(container.applications, heads, correlation_id) == []
    assert _reason(container, authorization) == reason


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_valid_token_passes(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    endpoint: tuple[str, str, dict[str, Any] | None],
) -> None:
    """The control for the refusals below: the same calls with a good token succeed."""
    method, path, body = endpoint
    actor_id = f"contributor-{uuid.uuid4().hex[:10]}"
    token = container.tokens.issue(Actor(actor_id, frozenset({"contributor"}))).access_token

    response = client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == (200 if method == "GET" else 201), response.text
    if method == "GET":
        assert response.json() == {"id": actor_id, "roles": ["contributor"]}
    else:
        assert response.json()["version"] == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_expired_access_token_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    settings: Settings,
    endpoint: tuple[str, str, dict[str, Any] | None],
) -> None:
    issued_at = time.time() - settings.jwt_access_ttl_s - 60
    actor = Actor(f"contributor-{uuid.uuid4().hex[:10]}", frozenset({"contributor"}))
    token = container.tokens.issue(actor, now=issued_at).access_token

    _call_refused(client, container, endpoint, f"Bearer {token}", "the token has expired")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_token_signed_with_another_secret_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    endpoint: tuple[str, str, dict[str, Any] | None],
) -> None:
    forger = TokenService("not-the-iconmarket-secret-but-long-enough")
    actor = Actor(f"contributor-{uuid.uuid4().hex[:10]}", frozenset({"contributor"}))
    token = forger.issue(actor).access_token

    _call_refused(
        client,
        container,
        endpoint,
        f"Bearer {token}",
        "the token is not valid: Signature verification failed",
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("build", ["pyjwt", "by-hand"])
def test_an_unsigned_alg_none_token_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    settings: Settings,
    endpoint: tuple[str, str, dict[str, Any] | None],
    build: str,
) -> None:
    claims = _claims(settings, f"contributor-{uuid.uuid4().hex[:10]}", roles=["admin"])
    if build == "pyjwt":
        token = jwt.encode(claims, None, algorithm="none")
    else:
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."

    _call_refused(
        client,
        container,
        endpoint,
        f"Bearer {token}",
        "the token is not valid: The specified alg value is not allowed",
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_refresh_token_is_not_an_access_token(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    endpoint: tuple[str, str, dict[str, Any] | None],
) -> None:
    actor = Actor(f"contributor-{uuid.uuid4().hex[:10]}", frozenset({"contributor"}))
    refresh = container.tokens.issue(actor).refresh_token

    _call_refused(client, container, endpoint, f"Bearer {refresh}", "an access token is required")


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param({"iss": "someone-else"}, "the token is not valid: Invalid issuer", id="iss"),
        pytest.param(
            {"exp": None},
            'the token is not valid: Token is missing the "exp" claim',
            id="no-exp",
        ),
        pytest.param(
            {"typ": None},
            'the token is not valid: Token is missing the "typ" claim',
            id="no-typ",
        ),
        pytest.param({"typ": "id"}, "an access token is required", id="other-typ"),
        pytest.param({"roles": "admin"}, "the token's roles are malformed", id="roles-not-list"),
    ],
)
def test_a_correctly_signed_token_with_bad_claims_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    settings: Settings,
    change: dict[str, Any],
    detail: str,
) -> None:
    claims = _claims(settings, f"contributor-{uuid.uuid4().hex[:10]}", **change)
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")

    _call_refused(client, container, CREATE_FAMILY, f"Bearer {token}", detail)


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        pytest.param("Basic x", "the Authorization header must be 'Bearer <token>'", id="basic"),
        pytest.param("Bearer ", "the Authorization header must be 'Bearer <token>'", id="empty"),
        pytest.param("Bearer", "the Authorization header must be 'Bearer <token>'", id="bare"),
        pytest.param(
            "Bearer not-a-jwt", "the token is not valid: Not enough segments", id="not-a-jwt"
        ),
        pytest.param("", "an Authorization: Bearer token is required", id="blank"),
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_malformed_authorization_header_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    endpoint: tuple[str, str, dict[str, Any] | None],
    authorization: str,
    detail: str,
) -> None:
    _call_refused(client, container, endpoint, authorization, detail)


def test_an_access_token_is_not_a_refresh_token(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    actor = Actor(f"customer-{uuid.uuid4().hex[:10]}", frozenset({"customer"}))
    access = container.tokens.issue(actor).access_token

    response = client.post("/v1/auth/token", json={"refresh_token": access})

    _unauthenticated(response, REFRESH_REFUSED)
    assert _reason(container, f"Bearer {access}", kind="refresh") == "a refresh token is required"


def test_an_expired_refresh_token_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    settings: Settings,
) -> None:
    actor = Actor(f"customer-{uuid.uuid4().hex[:10]}", frozenset({"customer"}))
    issued_at = time.time() - settings.jwt_refresh_ttl_s - 60
    refresh = container.tokens.issue(actor, now=issued_at).refresh_token

    response = client.post("/v1/auth/token", json={"refresh_token": refresh})

    _unauthenticated(response, REFRESH_REFUSED)
    assert _reason(container, f"Bearer {refresh}", kind="refresh") == "the token has expired"


def test_a_refresh_token_of_no_account_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    ghost = Account.create_id(_email())
    refresh = container.tokens.issue(Actor(str(ghost), frozenset({"customer"}))).refresh_token

    response = client.post("/v1/auth/token", json={"refresh_token": refresh})

    _unauthenticated(response, REFRESH_REFUSED)


REGISTERED = {
    "status": "accepted",
    "detail": "If this address had no account, it has one now; an account it had is unchanged. "
    "Sign in with POST /v1/auth/token.",
}


def _register(
    client: TestClient,  # type: ignore[type-arg]
    email: str,
    password: str = PASSWORD,
) -> Any:
    response = client.post("/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 202, response.text
    assert response.json() == REGISTERED
    return response


def _me(client: TestClient, access_token: str) -> Any:  # type: ignore[type-arg]
    response = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_register_then_password_then_refresh(
    client: TestClient,  # type: ignore[type-arg]
    settings: Settings,
) -> None:
    email = _email()
    account_id = str(Account.create_id(email))
    _register(client, email)

    by_password = client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert by_password.status_code == 200, by_password.text
    first = by_password.json()
    assert set(first) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (first["token_type"], first["expires_in"]) == ("Bearer", settings.jwt_access_ttl_s)
    assert _me(client, first["access_token"]) == {"id": account_id, "roles": ["customer"]}

    refreshed = client.post("/v1/auth/token", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert (second["token_type"], second["expires_in"]) == ("Bearer", settings.jwt_access_ttl_s)
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert _me(client, second["access_token"]) == {"id": account_id, "roles": ["customer"]}


def test_a_refresh_picks_up_changed_roles(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    email = _email()
    account_id = Account.create_id(email)
    _register(client, email)
    first = client.post("/v1/auth/token", json={"email": email, "password": PASSWORD}).json()
    admin = container.tokens.issue(Actor("admin-1", frozenset({"admin"}))).access_token
    changed = client.put(
        f"/v1/accounts/{account_id}/roles",
        json={"roles": ["customer", "contributor"]},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert changed.status_code == 202, changed.text

    second = client.post("/v1/auth/token", json={"refresh_token": first["refresh_token"]}).json()

    # The token issued before the change is refused (tests/integration/test_sessions.py).
    old = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {first['access_token']}"})
    _unauthenticated(old, ACCESS_REFUSED)
    assert _me(client, second["access_token"]) == {
        "id": str(account_id),
        "roles": ["contributor", "customer"],
    }


def test_registering_a_known_address_answers_as_a_new_one_and_changes_nothing(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    """Registration is no oracle of who has an account: a taken address gets the very answer a
    free one gets (status, body, headers but the request id), nothing is appended, and the
    owner's password and roles stay as they were."""
    taken, free = _email(), _email()
    _register(client, taken)
    correlation_id = f"jwt-{uuid.uuid4().hex}"
    heads = log_heads(container.applications)

    again = client.post(
        "/v1/auth/register",
        json={"email": taken, "password": "an intruder's password", "roles": ["contributor"]},
        headers={"X-Correlation-ID": correlation_id},
    )
    assert (
        appended_since(container.applications, heads, correlation_id, {Account.create_id(taken)})
        == []
    )
    new = _register(client, free)

    assert (again.status_code, again.json()) == (202, REGISTERED)
    volatile = {"x-request-id", "date", "ratelimit"}
    assert {k: v for k, v in again.headers.items() if k not in volatile} == {
        k: v for k, v in new.headers.items() if k not in volatile
    }
    owner = client.post("/v1/auth/token", json={"email": taken, "password": PASSWORD})
    assert owner.status_code == 200, owner.text
    assert _me(client, owner.json()["access_token"])["roles"] == ["customer"]
    intruder = client.post(
        "/v1/auth/token", json={"email": taken, "password": "an intruder's password"}
    )
    _unauthenticated(intruder, "wrong e-mail or password")


def test_a_wrong_password_reads_like_an_unknown_email(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    email = _email()
    _register(client, email)

    wrong_password = client.post(
        "/v1/auth/token", json={"email": email, "password": "not the password at all"}
    )
    unknown_email = client.post("/v1/auth/token", json={"email": _email(), "password": PASSWORD})

    _unauthenticated(wrong_password, "wrong e-mail or password")
    _unauthenticated(unknown_email, "wrong e-mail or password")
    strip = ("request_id",)
    assert {k: v for k, v in wrong_password.json().items() if k not in strip} == {
        k: v for k, v in unknown_email.json().items() if k not in strip
    }


def test_a_token_request_without_credentials_is_refused(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    response = client.post("/v1/auth/token", json={"email": _email()})

    _unauthenticated(response, "send email and password, or refresh_token")


def test_registering_as_an_admin_is_refused(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    """Self-service registration offers only customer and contributor: the schema's enum says
    so, and any other role is refused as invalid input before anything is written."""
    email = _email()
    correlation_id = f"jwt-{uuid.uuid4().hex}"
    heads = log_heads(container.applications)

    response = client.post(
        "/v1/auth/register",
        json={"email": email, "password": PASSWORD, "roles": ["customer", "admin"]},
        headers={"X-Correlation-ID": correlation_id},
    )

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"] == [
        {"message": "Invalid enum value 'admin'", "key": "roles[1]", "source": "body"}
    ]
    watched = {Account.create_id(email)}
    assert appended_since(container.applications, heads, correlation_id, watched) == []


@pytest.mark.parametrize(
    "correlation",
    [
        pytest.param("x" * 129, id="too-long"),
        pytest.param("stripe:evt_1Nx", id="imitates-stripe"),
        pytest.param("a b", id="space"),
        pytest.param("é", id="non-ascii"),
    ],
)
def test_a_malformed_correlation_id_is_refused_before_anything_is_written(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    correlation: str,
) -> None:
    actor = Actor(f"contributor-{uuid.uuid4().hex[:10]}", frozenset({"contributor"}))
    token = container.tokens.issue(actor).access_token
    heads = log_heads(container.applications)

    response = client.post(
        "/v1/families",
        json={"name": "Correlated"},
        headers={
            "Authorization": f"Bearer {token}",
            "X-Correlation-Id": correlation.encode(),  # type: ignore[dict-item]
        },
    )

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert "X-Correlation-Id must be 1-128 characters" in response.json()["detail"]
    assert log_heads(container.applications) == heads


def test_a_well_formed_correlation_id_of_128_characters_is_stored(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
) -> None:
    actor = Actor(f"contributor-{uuid.uuid4().hex[:10]}", frozenset({"contributor"}))
    token = container.tokens.issue(actor).access_token
    correlation = f"ok-{uuid.uuid4().hex}".ljust(128, "z")
    heads = log_heads(container.applications)

    response = client.post(
        "/v1/families",
        json={"name": "Correlated"},
        headers={"Authorization": f"Bearer {token}", "X-Correlation-Id": correlation},
    )

    assert response.status_code == 201, response.text
    [appended] = appended_since(container.applications, heads, correlation)
    assert str(appended.originator_id) == response.json()["id"]
