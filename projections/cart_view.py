"""The carts read model in Redis: one hash per cart (``{prefix}cart:{id}``), sliding TTL.

Fields: ``meta`` (JSON: owner, currency, status, order id), ``line:{kind}:{id}`` (JSON per line),
``version`` and ``position`` (of the last event applied). Every write runs in one Lua script that
applies it only when its version is newer than the stored one: redelivery cannot regress a cart.

Each customer's open carts are a sorted set ``{prefix}customer-carts:{owner}`` scored by the
position that opened them; the highest is the customer's current cart (``/v1/carts/me``). A cart
leaves it when checked out or expired. Every change is published on the cart's channel and on
the owner's.

Open carts are also in ``{prefix}carts-idle`` (no TTL), scored by the epoch seconds of their last
event: the sweeper expires (``Cart.Expired``) those idle past the cart TTL, then the hash becomes
a tombstone (status ``expired``, no lines) that reads answer with 410 ``cart_expired``. The hash
outlives the cart TTL by a day (``CART_VIEW_TTL_S``) so the sweeper gets there first. A hash that
lapsed anyway before a later event (the sweeper was down) cannot be rebuilt from that one event:
it becomes the same tombstone, never a cart without its meta. Expired is final in the view.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from projections.carts import CartWrite
from projections.keyspace import pointer_key

CART_TTL_S = 7 * 24 * 3600
CART_VIEW_TTL_S = CART_TTL_S + 24 * 3600
EXPIRED = "expired"

# KEYS: the cart hash, its change channel.
# ARGV: version, position, ttl, op, meta-json, field, value-json, key prefix, activity (epoch s).
_APPLY = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local version = tonumber(ARGV[1])
if version <= stored then return 0 end
local op = ARGV[4]
local prefix = ARGV[8]
local cart_id = string.sub(KEYS[1], string.len(prefix) + 6)
local raw_meta = redis.call('HGET', KEYS[1], 'meta')
local lost = op ~= 'open' and not raw_meta
local ended = raw_meta and cjson.decode(raw_meta)['status'] == 'expired'
if lost or ended then
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, 5) == 'line:' then redis.call('HDEL', KEYS[1], field) end
  end
  if lost then redis.call('HSET', KEYS[1], 'meta', cjson.encode({status = 'expired'})) end
elseif op == 'open' then
  redis.call('HSET', KEYS[1], 'meta', ARGV[5])
elseif op == 'put_line' then
  redis.call('HSET', KEYS[1], ARGV[6], ARGV[7])
elseif op == 'delete_line' then
  redis.call('HDEL', KEYS[1], ARGV[6])
else
  if op ~= 'close' then
    for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
      if string.sub(field, 1, 5) == 'line:' then redis.call('HDEL', KEYS[1], field) end
    end
  end
  if op == 'close' or op == 'expire' then
    local meta = cjson.decode(raw_meta)
    for k, v in pairs(cjson.decode(ARGV[5])) do meta[k] = v end
    redis.call('HSET', KEYS[1], 'meta', cjson.encode(meta))
  end
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'position', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if op == 'close' or op == 'expire' then
  redis.call('ZREM', prefix .. 'carts-idle', cart_id)
else
  redis.call('ZADD', prefix .. 'carts-idle', ARGV[9], cart_id)
end
redis.call('PUBLISH', KEYS[2], ARGV[2])
local owner = cjson.decode(redis.call('HGET', KEYS[1], 'meta'))['owner_id']
if owner then
  local carts = prefix .. 'customer-carts:' .. owner
  if op == 'open' then
    redis.call('ZADD', carts, tonumber(ARGV[2]), cart_id)
  elseif op == 'close' or op == 'expire' then
    redis.call('ZREM', carts, cart_id)
  end
  redis.call('EXPIRE', carts, tonumber(ARGV[3]))
  redis.call('PUBLISH', prefix .. 'customer-carts-changed:' .. owner, ARGV[2])
end
return 1
"""


# KEYS: the carts' key-space pointer. ARGV: 'cart' or 'current', the cart id or the owner id.
# Returns {live prefix, cart id, the cart hash as a flat field/value list}.
_READ = """
local prefix = redis.call('GET', KEYS[1]) or ''
local cart_id = ARGV[2]
if ARGV[1] == 'current' then
  local newest = redis.call('ZREVRANGE', prefix .. 'customer-carts:' .. ARGV[2], 0, 0)
  if #newest == 0 then return {prefix, '', {}} end
  cart_id = newest[1]
end
return {prefix, cart_id, redis.call('HGETALL', prefix .. 'cart:' .. cart_id)}
"""


class CartView(Protocol):
    """Where cart writes land and carts are read from."""

    def apply(self, writes: list[CartWrite]) -> int: ...

    def get(self, cart_id: str) -> dict[str, Any] | None: ...

    def current(self, owner_id: str) -> dict[str, Any] | None: ...


class RedisCartView:
    """Redis; a ``prefix`` lets a rebuild fill a new key space beside the live one."""

    def __init__(self, client: Any, prefix: str = "", ttl_s: int = CART_VIEW_TTL_S) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._script = client.register_script(_APPLY)

    def key(self, cart_id: str) -> str:
        return f"{self._prefix}cart:{cart_id}"

    def channel(self, cart_id: str) -> str:
        """Where the new position is published each time this cart's view changes."""
        return self.channel_in(self._prefix, cart_id)

    @staticmethod
    def channel_in(prefix: str, cart_id: str) -> str:
        return f"{prefix}cart-changed:{cart_id}"

    @staticmethod
    def customer_channel_in(prefix: str, owner_id: str) -> str:
        return f"{prefix}customer-carts-changed:{owner_id}"

    def customer_carts(self, owner_id: str) -> str:
        """The sorted set of the customer's open carts (score: the position that opened it)."""
        return f"{self._prefix}customer-carts:{owner_id}"

    def customer_channel(self, owner_id: str) -> str:
        """Where the new position is published each time one of the customer's carts changes."""
        return self.customer_channel_in(self._prefix, owner_id)

    def apply(self, writes: list[CartWrite]) -> int:
        """Apply writes in order; returns how many changed the view (older ones are no-ops)."""
        pipe = self._client.pipeline(transaction=False)
        for write in writes:
            field = write.fields.get("key", "")
            value = json.dumps(write.fields.get("line", {}), sort_keys=True)
            meta = {k: v for k, v in write.fields.items() if k not in {"key", "line"}}
            self._script(
                keys=[self.key(write.cart_id), self.channel(write.cart_id)],
                args=[
                    write.version,
                    write.position,
                    self._ttl_s,
                    write.op,
                    json.dumps(meta, sort_keys=True),
                    field,
                    value,
                    self._prefix,
                    _epoch(write.occurred_at),
                ],
                client=pipe,
            )
        return sum(int(result) for result in pipe.execute())

    def get(self, cart_id: str) -> dict[str, Any] | None:
        return cart_document(cart_id, self._client.hgetall(self.key(cart_id)))

    def current(self, owner_id: str) -> dict[str, Any] | None:
        """The customer's most recently opened cart that is still open, if any."""
        newest = self._client.zrevrange(self.customer_carts(owner_id), 0, 0)
        return self.get(newest[0].decode()) if newest else None

    def idle_key(self) -> str:
        """The sorted set of open carts scored by their last event's epoch seconds."""
        return f"{self._prefix}carts-idle"

    def idle_since(self, before: float, limit: int, *, offset: int = 0) -> list[str]:
        """Up to ``limit`` open carts whose last event is at or before ``before`` (epoch s),
        the longest idle first, skipping the first ``offset``."""
        ids = self._client.zrangebyscore(self.idle_key(), "-inf", before, start=offset, num=limit)
        return [cart_id.decode() for cart_id in ids]


def _epoch(occurred_at: str) -> float:
    """An event's ISO-8601 time as epoch seconds (0 when unknown: idle since forever)."""
    return datetime.fromisoformat(occurred_at).timestamp() if occurred_at else 0.0


def cart_document(cart_id: str, raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    """The cart as the API shows it, from the hash's raw fields (None when there is none)."""
    if not raw:
        return None
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    meta = json.loads(fields["meta"]) if "meta" in fields else {"status": EXPIRED}
    lines = sorted(
        (json.loads(v) for k, v in fields.items() if k.startswith("line:")),
        key=lambda line: (line["product_kind"], line["product_id"]),
    )
    total = sum(line["unit_price"]["amount_minor"] for line in lines)
    return {
        "id": cart_id,
        **meta,
        "lines": lines,
        "total": {"amount_minor": total, "currency": meta.get("currency")},
        "version": int(fields.get("version", 0)),
        "position": int(fields.get("position", 0)),
    }


class CartReader:
    """The API's reads (asyncio Redis): one round trip resolves the live key space (see
    `projections.keyspace`) and reads the cart."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._script = client.register_script(_READ)

    async def _read(self, mode: str, ident: str) -> tuple[str, dict[str, Any] | None]:
        prefix, cart_id, flat = await self._script(keys=[pointer_key("carts")], args=[mode, ident])
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        return prefix.decode(), cart_document(cart_id.decode(), raw) if cart_id else None

    async def get(self, cart_id: str) -> tuple[str, dict[str, Any] | None]:
        """(the live prefix, the cart or None)."""
        return await self._read("cart", cart_id)

    async def current(self, owner_id: str) -> tuple[str, dict[str, Any] | None]:
        """(the live prefix, the owner's newest open cart or None)."""
        return await self._read("current", owner_id)
