"""The claims of access and refresh tokens: sessions version (``ver``) and family (``fam``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from api.auth import TokenService
from commands.errors import Unauthenticated
from commands.policy import Actor

SECRET = "unit-test-signing-secret-0123456789abcdef"
ACTOR = Actor(id="3f1c9f1e-0000-4000-8000-000000000001", roles=frozenset({"customer"}))


def _decoded(token: str) -> dict[str, Any]:
    return jwt.decode(token, SECRET, algorithms=["HS256"], issuer="iconmarket")


def test_a_login_s_pair_carries_the_version_and_family_and_the_refresh_token_s_id() -> None:
    family, jti = uuid.uuid4().hex, uuid.uuid4().hex
    pair = TokenService(SECRET).issue(ACTOR, version=7, family=family, refresh_jti=jti)

    access, refresh = _decoded(pair.access_token), _decoded(pair.refresh_token)
    assert (access["ver"], access["fam"], access["typ"]) == (7, family, "access")
    assert (refresh["ver"], refresh["fam"], refresh["jti"], refresh["typ"]) == (
        7,
        family,
        jti,
        "refresh",
    )
    assert access["jti"] != jti


def test_claims_read_back_what_was_issued() -> None:
    tokens = TokenService(SECRET)
    family, jti = uuid.uuid4().hex, uuid.uuid4().hex
    pair = tokens.issue(ACTOR, version=3, family=family, refresh_jti=jti)

    access = tokens.claims(pair.access_token)
    refresh = tokens.claims(pair.refresh_token, kind="refresh")

    assert (access.actor, access.kind, access.version, access.family) == (
        ACTOR,
        "access",
        3,
        family,
    )
    assert (refresh.version, refresh.family, refresh.jti) == (3, family, jti)
    assert tokens.peek(pair.access_token) == access
    assert tokens.peek(pair.refresh_token) is None  # peek reads access tokens only


def test_a_minted_token_is_of_version_0_and_no_session() -> None:
    tokens = TokenService(SECRET)
    claims = tokens.claims(tokens.issue(ACTOR).access_token)

    assert (claims.version, claims.family) == (0, None)


def _signed(**overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "iconmarket",
        "sub": ACTOR.id,
        "roles": ["customer"],
        "typ": "refresh",
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, "HS256")


def test_a_token_without_ver_counts_as_version_0() -> None:
    assert TokenService(SECRET).claims(_signed(), kind="refresh").version == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"ver": -1}, "the token's version is malformed"),
        ({"ver": "2"}, "the token's version is malformed"),
        ({"ver": True}, "the token's version is malformed"),
        ({"fam": "not-a-family"}, "the token's family is malformed"),
        ({"fam": 12}, "the token's family is malformed"),
        ({"jti": None}, "the token's id is malformed"),
        ({"jti": "x" * 32}, "the token's id is malformed"),
    ],
)
def test_malformed_session_claims_are_refused_with_the_one_answer(
    overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        TokenService(SECRET).claims(_signed(**overrides), kind="refresh")

    assert refused.value.message == "a valid refresh token is required"
    assert refused.value.reason == reason
