"""JWT access and refresh tokens (HS256 only), and the current actor of a request.

Besides the subject and roles, a token carries ``ver``, the account's sessions version when it
was issued (`domain.account.Account.sessions_version`; absent means 0), and ``fam``, its
session (refresh-token family) id: `api.sessions` refuses a token older than the account's
last role change or block, and every token of a family that was logged out or whose refresh
token was reused."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from commands.errors import Unauthenticated
from commands.policy import Actor

ALGORITHM = "HS256"
_ID = re.compile(r"[0-9a-f]{32}")
ISSUER = "iconmarket"
log = logging.getLogger("iconmarket.auth")


def refused(kind: str, reason: str) -> Unauthenticated:
    """The one answer for any problem with a token of ``kind``: a 401 that says only that a
    valid one is required (what is wrong with it would help a forger). ``reason`` is logged."""
    log.info("token refused", extra={"kind": kind, "reason": reason})
    return Unauthenticated(f"a valid {kind} token is required", reason=reason)


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: who, the sessions version it was issued at, its family."""

    actor: Actor
    kind: str
    version: int
    family: str | None
    jti: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class TokenService:
    """Issues and verifies tokens; anything but a valid HS256 token of the right type is refused."""

    def __init__(self, secret: str, *, access_ttl_s: int = 900, refresh_ttl_s: int = 14 * 86400):
        if len(secret) < 32:
            raise ValueError("the JWT secret must be at least 32 characters")
        self._secret = secret
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    def _encode(
        self,
        actor: Actor,
        kind: str,
        ttl_s: int,
        now: float,
        *,
        version: int,
        family: str | None,
        jti: str | None = None,
    ) -> str:
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": actor.id,
            "roles": sorted(actor.roles),
            "typ": kind,
            "iat": int(now),
            "exp": int(now) + ttl_s,
            "jti": jti or uuid.uuid4().hex,
            "ver": version,
        }
        if family is not None:
            claims["fam"] = family
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue(
        self,
        actor: Actor,
        *,
        version: int = 0,
        family: str | None = None,
        refresh_jti: str | None = None,
        now: float | None = None,
    ) -> TokenPair:
        """A token pair for ``actor`` at sessions ``version``, of session ``family`` (the
        refresh token's id is ``refresh_jti`` when given). `api.sessions` issues the tokens
        of logins; tests mint family-less ones."""
        at = time.time() if now is None else now
        return TokenPair(
            access_token=self._encode(
                actor, "access", self.access_ttl_s, at, version=version, family=family
            ),
            refresh_token=self._encode(
                actor,
                "refresh",
                self.refresh_ttl_s,
                at,
                version=version,
                family=family,
                jti=refresh_jti,
            ),
            expires_in=self.access_ttl_s,
        )

    def _decode(self, token: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            self._secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "typ", "iss"]},
        )
        return claims

    def subject(self, authorization: str | None) -> str | None:
        """The account a valid access token in ``authorization`` (``Bearer <token>``) names,
        else None. Silent: whoever needs the caller refuses and logs (rate limits only count)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            claims = self._decode(token.strip())
        except jwt.PyJWTError:
            return None
        return str(claims["sub"]) if claims.get("typ") == "access" else None

    def verify(self, token: str, *, kind: str = "access") -> Actor:
        """The actor a valid token of ``kind`` names (its signature and claims only: whether
        its session still holds is `api.sessions`'s check)."""
        return self.claims(token, kind=kind).actor

    def claims(self, token: str, *, kind: str = "access") -> TokenClaims:
        """The claims of a valid token of ``kind``, else the one 401 (`refused`, logged)."""
        try:
            return self._claims(token, kind)
        except _Refusal as refusal:
            raise refused(kind, str(refusal)) from None

    def peek(self, token: str) -> TokenClaims | None:
        """The claims of a valid access token, else None; silent (the caller that needs the
        actor refuses and logs)."""
        try:
            return self._claims(token, "access")
        except _Refusal:
            return None

    def _claims(self, token: str, kind: str) -> TokenClaims:
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            raise _Refusal("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise _Refusal(f"the token is not valid: {exc}") from None
        if claims.get("typ") != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            raise _Refusal(f"{article} {kind} token is required")
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise _Refusal("the token's roles are malformed")
        version = claims.get("ver", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise _Refusal("the token's version is malformed")
        family = claims.get("fam")
        if family is not None and not (isinstance(family, str) and _ID.fullmatch(family)):
            raise _Refusal("the token's family is malformed")
        jti = claims.get("jti", "")
        if not isinstance(jti, str) or (kind == "refresh" and not _ID.fullmatch(jti)):
            raise _Refusal("the token's id is malformed")
        return TokenClaims(
            actor=Actor(id=str(claims["sub"]), roles=frozenset(roles)),
            kind=kind,
            version=version,
            family=family,
            jti=jti,
        )


class _Refusal(Exception):
    """Why a token is not valid (for the log)."""


def bearer_value(authorization: str | None) -> str | None:
    """The token of ``Bearer <token>``, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise refused("access", "an Authorization: Bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise refused("access", "the Authorization header must be 'Bearer <token>'")
    return token.strip()
