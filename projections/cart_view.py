"""The carts read model in Redis: one hash per cart (``{prefix}cart:{id}``), 7-day sliding TTL.

Fields: ``meta`` (JSON: owner, currency, status, order id), ``line:{kind}:{id}`` (JSON per line),
``version`` and ``position`` (of the last event applied). Every write runs in one Lua script that
applies it only when its version is newer than the stored one: redelivery cannot regress a cart.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from projections.carts import CartWrite

CART_TTL_S = 7 * 24 * 3600

# KEYS: the cart hash, its change channel.
# ARGV: version, position, ttl, op, meta-json, field, value-json.
_APPLY = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local version = tonumber(ARGV[1])
if version <= stored then return 0 end
local op = ARGV[4]
if op == 'open' then
  redis.call('HSET', KEYS[1], 'meta', ARGV[5])
elseif op == 'put_line' then
  redis.call('HSET', KEYS[1], ARGV[6], ARGV[7])
elseif op == 'delete_line' then
  redis.call('HDEL', KEYS[1], ARGV[6])
elseif op == 'clear' or op == 'close' then
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if op == 'clear' and string.sub(field, 1, 5) == 'line:' then
      redis.call('HDEL', KEYS[1], field)
    end
  end
  if op == 'close' then
    local meta = cjson.decode(redis.call('HGET', KEYS[1], 'meta') or '{}')
    local change = cjson.decode(ARGV[5])
    for k, v in pairs(change) do meta[k] = v end
    redis.call('HSET', KEYS[1], 'meta', cjson.encode(meta))
  end
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'position', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1
"""


class CartView(Protocol):
    """Where cart writes land and carts are read from."""

    def apply(self, writes: list[CartWrite]) -> int: ...

    def get(self, cart_id: str) -> dict[str, Any] | None: ...


class RedisCartView:
    """Redis; a ``prefix`` lets a rebuild fill a new key space beside the live one."""

    def __init__(self, client: Any, prefix: str = "", ttl_s: int = CART_TTL_S) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._script = client.register_script(_APPLY)

    def key(self, cart_id: str) -> str:
        return f"{self._prefix}cart:{cart_id}"

    def channel(self, cart_id: str) -> str:
        """Where the new position is published each time this cart's view changes."""
        return f"{self._prefix}cart-changed:{cart_id}"

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
                ],
                client=pipe,
            )
        return sum(int(result) for result in pipe.execute())

    def get(self, cart_id: str) -> dict[str, Any] | None:
        return cart_document(cart_id, self._client.hgetall(self.key(cart_id)))


def cart_document(cart_id: str, raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    """The cart as the API shows it, from the hash's raw fields (None when there is none)."""
    if not raw:
        return None
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    meta = json.loads(fields["meta"]) if "meta" in fields else {}
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
        "version": int(fields["version"]),
        "position": int(fields["position"]),
    }
