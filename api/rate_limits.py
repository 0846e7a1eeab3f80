"""Rate limits: budgets per client address and per account, counted in Redis, so every API worker
draws on the same ones (a counter in the process would multiply each budget by the workers).

A metered request belongs to one budget (`budget_of`): ``auth`` (writes under /v1/auth/),
``uploads`` (SVG uploads, presigned uploads and their completion, zip imports), ``commands``
(every other write except Stripe's webhook, which Stripe signs and retries) or ``reads`` (search,
suggest, and any read given a ``min_position``). It is counted against the budget's ``ip``
partition (`client_address`) and, when it carries a valid access token, its ``account``
partition (the token's subject). The counting is the ``limits`` library's sliding window
counter on Redis: one atomic Lua script per check and two counters per key, whatever the
budget, so a spray of addresses cannot grow Redis by more than that.

Every metered response carries the fields of draft-ietf-httpapi-ratelimit-headers-10, one item
per quota that applied: ``RateLimit-Policy: "commands-ip";q=1200;w=60`` and
``RateLimit: "commands-ip";r=1199;t=60`` (units left, and seconds until one comes back). Over
budget the request is answered 429 ``rate_limited`` with ``Retry-After`` before anything else
runs: nothing is read, appended or stored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from litestar import Request, Response
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from prometheus_client import Counter
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError

from api.auth import TokenService
from api.errors import problem
from infra.settings import Settings

log = logging.getLogger("iconmarket.ratelimit")

BUDGETS = ("auth", "commands", "uploads", "reads")
PARTITIONS = ("ip", "account")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READS = frozenset({"GET", "HEAD"})
_UPLOADS = re.compile(
    r"^/v1/(?:icons/[^/]+/svg(?:/uploads(?:/[^/]+/complete)?)?|sets/[^/]+/imports)$"
)
_EXPENSIVE_READS = re.compile(r"^/v1/icons/(?:search|suggest)$")
UNMETERED_WRITES = frozenset({"/v1/webhooks/stripe"})
WARN_EVERY_S = 10.0
REDIS_CONNECTIONS = 128
UNAVAILABLE_RETRY_AFTER_S = 1

RATE_LIMITED = Counter(
    "iconmarket_rate_limited_total",
    "Requests refused with 429 rate_limited, by the quota they exceeded.",
    ["policy"],
)
LIMITER_UNAVAILABLE = Counter(
    "iconmarket_rate_limiter_unavailable_total",
    "Requests whose budget check found Redis unreachable, by what they got: open (served "
    "unmetered) or closed (503 rate_limiter_unavailable).",
    ["outcome"],
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def budget_of(method: str, path: str, *, min_position: bool) -> str | None:
    """The budget a request draws on, or None when it is not metered (cheap reads, health,
    metrics, the docs, Stripe's webhook)."""
    path = path.rstrip("/") or "/"
    if method in WRITES:
        if path.startswith("/v1/auth/"):
            return "auth"
        if _UPLOADS.match(path):
            return "uploads"
        return None if path in UNMETERED_WRITES else "commands"
    if method in READS and (min_position or _EXPENSIVE_READS.match(path)):
        return "reads"
    return None


def asks_min_position(query_string: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a read waits for a position (``min_position`` or ``X-Min-Position``), however
    the value looks: the handler validates it, the budget is drawn either way."""
    if any(name.lower() == b"x-min-position" for name, _ in headers):
        return True
    query = query_string.decode("latin-1")
    return any(key == "min_position" for key, _ in parse_qsl(query, keep_blank_values=True))


def _address(raw: str) -> Address | None:
    text = raw.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _key(address: Address) -> str:
    """IPv4 addresses count one by one; IPv6 ones by /64, the block one subscriber gets."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """Whom a request is counted against: its connection's address, unless that is a trusted
    proxy; then the right-most ``X-Forwarded-For`` entry that is not a trusted proxy itself
    (entries left of it are whatever the client chose to send). When every entry is a trusted
    proxy, the left-most one. A peer that is no address (a test client) counts by its name."""

    def is_trusted(address: Address) -> bool:
        return any(address in network for network in trusted)

    address = _address(peer) if peer else None
    if address is None:
        return peer or "unknown"
    if not is_trusted(address):
        return _key(address)
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        parsed = _address(hop)
        if parsed is None:
            return f"unparsed:{hop[:64]}"
        if not is_trusted(parsed):
            return _key(parsed)
    first = _address(hops[0]) if hops else None
    return _key(first or address)


@dataclass(frozen=True)
class Policy:
    """One quota of one budget's partition, named as RateLimit-Policy names it."""

    name: str
    budget: str
    partition: str
    item: RateLimitItem

    @property
    def field(self) -> str:
        return f'"{self.name}";q={self.item.amount};w={self.item.get_expiry()}'


def policies_of(settings: Settings) -> dict[tuple[str, str], tuple[Policy, ...]]:
    """Each budget's quotas per partition, from the ``rate_limit_*_per_*`` settings. A budget
    of one quota is named ``<budget>-<partition>``; several get their window appended."""
    out: dict[tuple[str, str], tuple[Policy, ...]] = {}
    for budget in BUDGETS:
        for partition in PARTITIONS:
            items = parse_many(getattr(settings, f"rate_limit_{budget}_per_{partition}"))
            name = f"{budget}-{partition}"
            out[(budget, partition)] = tuple(
                Policy(
                    name if len(items) == 1 else f"{name}-{item.get_expiry()}s",
                    budget,
                    partition,
                    item,
                )
                for item in items
            )
    return out


@dataclass(frozen=True)
class Standing:
    """Where one request left one quota: whether it fitted, the units left, and the seconds
    until one more comes back."""

    policy: Policy
    allowed: bool
    remaining: int
    reset_in_s: int


def ratelimit_fields(standings: Sequence[Standing]) -> dict[str, str]:
    """The RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10)."""
    return {
        "RateLimit-Policy": ", ".join(s.policy.field for s in standings),
        "RateLimit": ", ".join(
            f'"{s.policy.name}";r={s.remaining};t={s.reset_in_s}' for s in standings
        ),
    }


def _seconds_until(reset_time: float, now: float, policy: Policy) -> int:
    """Whole seconds until ``reset_time``; a quota nobody has drawn on yet resets a window
    after the draw about to be made."""
    seconds = math.ceil(reset_time - now)
    return seconds if seconds > 0 else policy.item.get_expiry()


class LimiterUnavailable(Exception):
    """Redis did not answer a budget check in time."""


class RateLimits:
    """The budgets of one API process, in Redis under ``rate_limit_prefix``."""

    def __init__(self, settings: Settings, tokens: TokenService) -> None:
        self.settings = settings
        self._tokens = tokens
        self._policies = policies_of(settings)
        self._trusted = [ipaddress.ip_network(e, strict=False) for e in settings.trusted_proxies()]
        self._pool: BlockingConnectionPool | None = None
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        self._warned_at = -math.inf

    async def start(self) -> None:
        """Make the Redis client in the serving event loop (an asyncio client belongs to the
        loop that made it). Connects on the first check, not here."""
        s = self.settings
        if not s.rate_limit_enabled:
            return
        self._pool = BlockingConnectionPool(
            host=s.redis_host,
            port=s.redis_port,
            max_connections=REDIS_CONNECTIONS,
            timeout=s.rate_limit_timeout_s,
            socket_timeout=s.rate_limit_timeout_s,
            socket_connect_timeout=s.rate_limit_timeout_s,
        )
        storage = RedisStorage(
            f"async+{s.redis_url}",
            implementation="redispy",
            key_prefix=s.rate_limit_prefix,
            wrap_exceptions=True,
            # Typed as scalar options, but handed to redis.asyncio.Redis as they are.
            connection_pool=self._pool,  # type: ignore[arg-type]
        )
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    async def close(self) -> None:
        pool, self._pool, self._limiter = self._pool, None, None
        if pool is not None:
            await pool.disconnect()

    async def check(self, budget: str, address: str, account: str | None) -> list[Standing]:
        """Draw one unit from each quota of ``budget`` for ``address`` (and ``account``), or
        from none when one of them is spent: a refused request costs nothing, so an account
        over its budget does not spend its address's (others may share it). Raise
        `LimiterUnavailable` when Redis does not answer within ``rate_limit_timeout_s``."""
        keyed = [(policy, address) for policy in self._policies[(budget, "ip")]]
        if account is not None:
            keyed += [(policy, account) for policy in self._policies[(budget, "account")]]
        try:
            return await asyncio.wait_for(
                self._draw(keyed), timeout=self.settings.rate_limit_timeout_s
            )
        except (StorageError, RedisError, OSError, TimeoutError) as exc:
            raise LimiterUnavailable(str(exc) or type(exc).__name__) from exc

    async def _draw(self, keyed: Sequence[tuple[Policy, str]]) -> list[Standing]:
        limiter = self._limiter
        if limiter is None:
            raise LimiterUnavailable("the rate limiter was not started")
        before = await asyncio.gather(
            *(limiter.get_window_stats(p.item, p.budget, p.partition, who) for p, who in keyed)
        )
        now = time.time()
        resets = [
            _seconds_until(stats.reset_time, now, policy)
            for (policy, _), stats in zip(keyed, before, strict=True)
        ]
        if any(stats.remaining < 1 for stats in before):
            return [
                Standing(policy, stats.remaining >= 1, stats.remaining, reset)
                for (policy, _), stats, reset in zip(keyed, before, resets, strict=True)
            ]
        # Each hit is atomic: of requests that raced past the look above, the late ones are
        # refused here (having spent the quotas whose hit went through).
        hits = await asyncio.gather(
            *(limiter.hit(p.item, p.budget, p.partition, who) for p, who in keyed)
        )
        return [
            Standing(policy, hit, stats.remaining - 1 if hit else 0, reset)
            for (policy, _), stats, reset, hit in zip(keyed, before, resets, hits, strict=True)
        ]

    def _unavailable(self, exc: LimiterUnavailable, budget: str) -> None:
        outcome = "open" if self.settings.rate_limit_fail_open else "closed"
        LIMITER_UNAVAILABLE.labels(outcome).inc()
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "rate limiter unavailable",
                extra={"budget": budget, "outcome": outcome, "error": str(exc)},
            )

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Litestar middleware: meter each request before its handler (or its body) runs."""

        async def metered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not self.settings.rate_limit_enabled:  # type: ignore[comparison-overlap]
                await app(scope, receive, send)
                return
            http = cast("HTTPScope", scope)
            headers: list[tuple[bytes, bytes]] = list(http["headers"])
            wants_position = asks_min_position(http["query_string"], headers)
            budget = budget_of(http["method"], http["path"], min_position=wants_position)
            if budget is None:
                await app(scope, receive, send)
                return
            client = scope.get("client")
            address = client_address(
                client[0] if client else None,
                [v.decode("latin-1") for k, v in headers if k.lower() == b"x-forwarded-for"],
                self._trusted,
            )
            authorization = next(
                (v.decode("latin-1") for k, v in headers if k.lower() == b"authorization"), None
            )
            try:
                standings = await self.check(budget, address, self._tokens.subject(authorization))
            except LimiterUnavailable as exc:
                self._unavailable(exc, budget)
                if self.settings.rate_limit_fail_open:
                    await app(scope, receive, send)
                    return
                await _answer(
                    problem(
                        503,
                        "rate_limiter_unavailable",
                        "the rate limiter cannot be reached; nothing was done",
                        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
                    ),
                    scope,
                    receive,
                    send,
                )
                return
            fields = ratelimit_fields(standings)
            refused = [s for s in standings if not s.allowed]
            if refused:
                await _answer(_too_many(budget, refused, fields), scope, receive, send)
                return

            async def send_with_fields(message: Message) -> None:
                if message["type"] == "http.response.start":
                    out = MutableScopeHeaders.from_message(message)
                    for name, value in fields.items():
                        out[name] = value
                await send(message)

            await app(scope, receive, send_with_fields)

        return metered


def _too_many(budget: str, refused: Sequence[Standing], fields: dict[str, str]) -> Response[Any]:
    for standing in refused:
        RATE_LIMITED.labels(standing.policy.name).inc()
    retry_after = max(1, *(s.reset_in_s for s in refused))
    first = refused[0].policy
    whom = "address" if first.partition == "ip" else "account"
    return problem(
        429,
        "rate_limited",
        f"too many {budget} requests from this {whom}; retry in {retry_after} s",
        extra={"policy": first.name},
        headers={**fields, "Retry-After": str(retry_after)},
    )


async def _answer(response: Response[Any], scope: Scope, receive: Receive, send: Send) -> None:
    request: Request[Any, Any, Any] = Request(scope, receive, send)
    await response.to_asgi_response(None, request)(scope, receive, send)
