"""JWT access and refresh tokens (HS256 only), and the current actor of a request."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from commands.errors import Unauthenticated
from commands.policy import Actor

ALGORITHM = "HS256"
ISSUER = "iconmarket"
log = logging.getLogger("iconmarket.auth")


def refused(kind: str, reason: str) -> Unauthenticated:
    """The one answer for any problem with a token of ``kind``: a 401 that says only that a
    valid one is required (what is wrong with it would help a forger). ``reason`` is logged."""
    log.info("token refused", extra={"kind": kind, "reason": reason})
    return Unauthenticated(f"a valid {kind} token is required", reason=reason)


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

    def _encode(self, actor: Actor, kind: str, ttl_s: int, now: float) -> str:
        claims = {
            "iss": ISSUER,
            "sub": actor.id,
            "roles": sorted(actor.roles),
            "typ": kind,
            "iat": int(now),
            "exp": int(now) + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue(self, actor: Actor, *, now: float | None = None) -> TokenPair:
        at = time.time() if now is None else now
        return TokenPair(
            access_token=self._encode(actor, "access", self.access_ttl_s, at),
            refresh_token=self._encode(actor, "refresh", self.refresh_ttl_s, at),
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
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            raise refused(kind, "the token has expired") from None
        except jwt.PyJWTError as exc:
            raise refused(kind, f"the token is not valid: {exc}") from None
        if claims.get("typ") != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            raise refused(kind, f"{article} {kind} token is required")
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise refused(kind, "the token's roles are malformed")
        return Actor(id=str(claims["sub"]), roles=frozenset(roles))


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise refused("access", "an Authorization: Bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise refused("access", "the Authorization header must be 'Bearer <token>'")
    return token.strip()
