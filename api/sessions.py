"""Sessions that can be cut: every access token is checked against its account and its session
on each request, refresh tokens rotate, a reused one ends its session, and logout.

Redis holds, under ``{prefix}:`` (ICONMARKET_SESSIONS_PREFIX; every API worker of a deployment
uses the same one):

- ``account:{id}`` (hash): ``ver``, the account's sessions version
  (`domain.account.Account.sessions_version`: the version of its last role change or block) as
  last confirmed from the event store, and one ``pending:{uuid}`` field (a deadline, unix ms)
  per role change in flight. No key: version 0. Permanent.
- ``family:{id}`` (hash): one session, the family of refresh tokens a login started:
  ``account``, ``current`` (the id of its one valid refresh token) and, once it ended,
  ``revoked`` (``logout`` or ``reused``). Expires a refresh lifetime after its last rotation.

An access token is accepted when its ``ver`` is at least the account's sessions version and its
family (``fam``), if it names one, is live. A token without ``ver`` counts as version 0 and one
without ``fam`` belongs to no session (only tests mint such tokens; every login names one).

The version is written on the command side, by the API request that changes the roles, and the
event store stays the truth: before the command runs the request adds a pending field, after it
(whatever its outcome) it reads the account's version from the store, raises ``ver`` to it and
removes its field. While a pending field exists, a check reads the account from the store
too, and raises ``ver`` to what it read; a field whose deadline (the command deadline plus
ICONMARKET_SESSIONS_CHANGE_HORIZON_S) has passed is removed by the first check after it, once it
has read the store. So an API process that dies between the commit and its write to Redis
leaves a pending field, never a stale version. Checks keep what they found for
ICONMARKET_SESSIONS_CACHE_S per process: a block or role change is seen by the process that made
it at once and by every other within that time.

Fail closed: when Redis (or, during a role change, the event store) cannot be read, a request
that needs its caller answers 503 ``sessions_unavailable``; logins and refreshes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth import TokenClaims, TokenPair, TokenService, bearer_value, refused
from commands.errors import CommandError
from commands.policy import Actor

log = logging.getLogger("iconmarket.sessions")
SCOPE_KEY: Final = "iconmarket.session"
"""Where the middleware leaves the check of the request's access token in the ASGI scope."""
CACHE_ENTRIES: Final = 100_000

# KEYS: the family. ARGV: the presented refresh token's id, its successor's id, the ttl (s), the
# account. Exactly one of two concurrent rotations of one token finds it current.
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'current')
if not current or redis.call('HGET', KEYS[1], 'account') ~= ARGV[4] then return 'unknown' end
if redis.call('HEXISTS', KEYS[1], 'revoked') == 1 then return 'revoked' end
if current ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'revoked', 'reused')
  return 'reused'
end
redis.call('HSET', KEYS[1], 'current', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 'rotated'
"""
# KEYS: the family. ARGV: why. A family that expired stays gone.
_REVOKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'revoked', ARGV[1])
return 1
"""
# KEYS: the account. ARGV: the version read from the store, then the pending fields to remove.
_CONFIRM = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if tonumber(ARGV[1]) > stored then redis.call('HSET', KEYS[1], 'ver', ARGV[1]) end
for i = 2, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
return 1
"""


class SessionsUnavailable(CommandError):
    """The sessions store (Redis), or the event store a check needed, did not answer: nothing
    was done; retry after ``retry_after_s`` seconds. Sessions fail closed."""

    code = "sessions_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Verdict:
    """The check of one access token: None when it holds, else why not (for the log)."""

    refusal: str | None = None
    unavailable: bool = False

    def enforce(self) -> None:
        if self.unavailable:
            raise SessionsUnavailable("sessions cannot be checked right now; nothing was done")
        if self.refusal is not None:
            raise refused("access", self.refusal)


HOLDS: Final = Verdict()


class Sessions:
    """The session checks and the refresh-token families (see the module docstring).

    ``connect`` makes an asyncio Redis client, once per event loop (an asyncio client's
    connections belong to the loop that opened them: a second app on one container, as tests
    run them, would otherwise fail every check); ``truth`` reads an account's sessions version
    from the event store (blocking: it runs in a thread)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        tokens: TokenService,
        truth: Callable[[str], int],
        *,
        prefix: str,
        cache_s: float,
        change_horizon_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connect = connect
        self._bound: tuple[asyncio.AbstractEventLoop, Any, Any, Any, Any] | None = None
        self.tokens = tokens
        self._truth = truth
        self._prefix = prefix
        self._cache_s = cache_s
        self._horizon_s = change_horizon_s
        self._clock = clock
        self._versions: dict[str, tuple[float, int]] = {}
        self._families: dict[str, tuple[float, bool]] = {}

    def _on_this_loop(self) -> tuple[Any, Any, Any, Any]:
        """(client, rotate, revoke, confirm) of the running event loop."""
        loop = asyncio.get_running_loop()
        if self._bound is None or self._bound[0] is not loop:
            client = self._connect()
            scripts = (client.register_script(s) for s in (_ROTATE, _REVOKE, _CONFIRM))
            self._bound = (loop, client, *scripts)
        return self._bound[1:]

    @property
    def _redis(self) -> Any:
        return self._on_this_loop()[0]

    @property
    def _rotate(self) -> Any:
        return self._on_this_loop()[1]

    @property
    def _revoke(self) -> Any:
        return self._on_this_loop()[2]

    @property
    def _confirm(self) -> Any:
        return self._on_this_loop()[3]

    def account_key(self, account_id: str) -> str:
        return f"{self._prefix}:account:{account_id}"

    def family_key(self, family: str) -> str:
        return f"{self._prefix}:family:{family}"

    async def start(self, actor: Actor, version: int) -> TokenPair:
        """A login: a new session (family) and its first token pair."""
        family, jti = uuid.uuid4().hex, uuid.uuid4().hex
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.family_key(family), mapping={"account": actor.id, "current": jti})
                pipe.expire(self.family_key(family), self.tokens.refresh_ttl_s)
                await pipe.execute()
        except Exception as exc:
            raise self._unavailable("login", exc) from None
        return self.tokens.issue(actor, version=version, family=family, refresh_jti=jti)

    async def rotate(self, claims: TokenClaims, actor: Actor, version: int) -> TokenPair:
        """A refresh: the presented refresh token is spent and its successor issued. A token
        that is not its family's current one (already rotated: a copy was used) ends the
        family; a token of no live family is refused. Every refusal is the one 401."""
        if claims.family is None:
            raise refused("refresh", "the refresh token names no session")
        jti = uuid.uuid4().hex
        try:
            outcome = await self._rotate(
                keys=[self.family_key(claims.family)],
                args=[claims.jti, jti, self.tokens.refresh_ttl_s, claims.actor.id],
            )
        except Exception as exc:
            raise self._unavailable("refresh", exc) from None
        outcome = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if outcome != "rotated":
            self._families.pop(claims.family, None)
            if outcome == "reused":
                log.warning(
                    "refresh token reused: session ended",
                    extra={"account": claims.actor.id, "family": claims.family},
                )
            raise refused("refresh", f"the refresh token's session: {outcome}")
        return self.tokens.issue(actor, version=version, family=claims.family, refresh_jti=jti)

    async def revoke(self, family: str, why: str = "logout") -> None:
        """End a session: its refresh token and every access token of it are refused."""
        try:
            await self._revoke(keys=[self.family_key(family)], args=[why])
        except Exception as exc:
            raise self._unavailable(why, exc) from None
        self._families.pop(family, None)

    async def check(self, claims: TokenClaims) -> Verdict:
        """Whether the access token ``claims`` came from still holds (see the module doc)."""
        account = claims.actor.id
        try:
            version = await self._version(account)
            live = claims.family is None or await self._live(claims.family)
        except SessionsUnavailable:
            return Verdict(unavailable=True)
        if claims.version < version:
            return Verdict(f"issued at version {claims.version}, the account is at {version}")
        if not live:
            return Verdict("the token's session ended (logout or a reused refresh token)")
        return HOLDS

    @contextlib.asynccontextmanager
    async def changing(self, account_id: str) -> AsyncIterator[None]:
        """Around a command that may change the account's roles (see the module docstring)."""
        key, field = self.account_key(account_id), f"pending:{uuid.uuid4().hex}"
        until_ms = int((self._clock() + self._horizon_s) * 1000)
        try:
            await self._redis.hset(key, field, until_ms)
        except Exception as exc:
            raise self._unavailable("role change", exc) from None
        try:
            yield
        finally:
            try:
                truth = await asyncio.to_thread(self._truth, account_id)
                await self._confirm(keys=[key], args=[truth, field])
            except Exception as exc:
                log.warning(
                    "role change not confirmed: checks read the event store until it is",
                    extra={"account": account_id, "error": repr(exc)},
                )
            self._versions.pop(account_id, None)

    async def _version(self, account: str) -> int:
        now = time.monotonic()
        cached = self._versions.get(account)
        if cached is not None and cached[0] > now:
            return cached[1]
        key = self.account_key(account)
        try:
            fields: dict[bytes, bytes] = await self._redis.hgetall(key)
        except Exception as exc:
            raise self._unavailable("check", exc) from None
        version = int(fields.get(b"ver", b"0"))
        pending = {f: int(v) for f, v in fields.items() if f.startswith(b"pending:")}
        if pending:
            read_at_ms = self._clock() * 1000
            try:
                truth = await asyncio.to_thread(self._truth, account)
                lapsed = [f for f, until in pending.items() if until < read_at_ms]
                await self._confirm(keys=[key], args=[truth, *lapsed])
            except Exception as exc:
                raise self._unavailable("check during a role change", exc) from None
            version = max(version, truth)
        self._remember(self._versions, account, (now + self._cache_s, version))
        return version

    async def _live(self, family: str) -> bool:
        now = time.monotonic()
        cached = self._families.get(family)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            current, revoked = await self._redis.hmget(
                self.family_key(family), "current", "revoked"
            )
        except Exception as exc:
            raise self._unavailable("check", exc) from None
        live = current is not None and revoked is None
        self._remember(self._families, family, (now + self._cache_s, live))
        return live

    def _remember(self, cache: dict[str, Any], key: str, value: Any) -> None:
        if self._cache_s <= 0:
            return
        if len(cache) >= CACHE_ENTRIES:
            cache.clear()
        cache[key] = value

    def _unavailable(self, what: str, exc: BaseException) -> SessionsUnavailable:
        log.warning("sessions unavailable", extra={"during": what, "error": repr(exc)})
        return SessionsUnavailable("sessions cannot be checked right now; nothing was done")

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Litestar middleware: check the request's access token, if it has a valid one, before
        its handler runs (asynchronously: the handlers' own look-up of the caller is not), and
        leave the verdict in the scope for `verdict_for`."""

        async def checked(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":  # type: ignore[comparison-overlap]
                authorization = next(
                    (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"),
                    None,
                )
                token = bearer_value(authorization)
                claims = self.tokens.peek(token) if token else None
                if token and claims is not None:
                    scope[SCOPE_KEY] = (token, await self.check(claims))  # type: ignore[typeddict-unknown-key]
            await app(scope, receive, send)

        return checked


def verdict_for(scope: Any, token: str) -> Verdict:
    """The middleware's verdict on ``token`` (a request's access token). There is always one
    for a valid token; without one (no middleware) the request is refused, never let through."""
    found = scope.get(SCOPE_KEY)
    if found is None or found[0] != token:
        log.error("no session verdict for the request's token: is the middleware installed?")
        return Verdict(unavailable=True)
    verdict: Verdict = found[1]
    return verdict
