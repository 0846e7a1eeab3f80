"""The per-customer read models in Redis: orders, library and favourites. Permanent: no TTL.

Keys (all under ``prefix``, so a rebuild can fill a new key space beside the live one):

- ``order:{order_id}`` (hash): ``customer_id``, ``cart_id``, ``status``, ``placed_at`` (strings),
  ``lines`` and ``total`` (JSON), ``version`` and ``position`` (of the last event applied).
- ``customer-orders:{customer}`` (sorted set): the customer's order ids, scored by the position
  of their ``Order.Placed``.
- ``library:{customer}`` (hash): ``customer_id``, ``library_id``, ``opened_at``,
  ``grant:{order_id}`` (JSON: order id, icons, granted_at, position; deleted when revoked),
  ``downloads:{icon_id}`` (a count), ``favourite:{icon_id}`` (the position that added it),
  ``version`` and ``position``.
- ``library-owner:{library_id}`` (string): the customer, since later library events name only
  the library.

Every write runs in one Lua script that applies it only when its version is newer than the one
stored for its aggregate, so redelivery, replay and any interleaving of different aggregates
(each one's own events in order) leave identical state. Each change publishes its position on
``customer-changed:{customer}``.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from projections.customers import CustomerWrite
from projections.keyspace import glob_escaped

# ARGV: version, position, doc kind, doc id, customer (or ''), prefix,
#       sets (JSON object field -> string), deletes (JSON array), increments (JSON array),
#       index ('1': add the order to the customer's orders).
_APPLY = """
local prefix = ARGV[6]
local kind = ARGV[3]
local doc_id = ARGV[4]
local customer = ARGV[5]
local key
if kind == 'order' then
  key = prefix .. 'order:' .. doc_id
  if customer == '' then customer = redis.call('HGET', key, 'customer_id') end
else
  local owner = prefix .. 'library-owner:' .. doc_id
  if customer == '' then
    customer = redis.call('GET', owner)
  else
    redis.call('SET', owner, customer)
  end
  if customer then key = prefix .. 'library:' .. customer end
end
if not customer then
  return redis.error_reply('no customer known for ' .. kind .. ' ' .. doc_id)
end
local stored = tonumber(redis.call('HGET', key, 'version') or '0')
local version = tonumber(ARGV[1])
if version <= stored then return 0 end
for field, value in pairs(cjson.decode(ARGV[7])) do
  redis.call('HSET', key, field, value)
end
for _, field in ipairs(cjson.decode(ARGV[8])) do
  redis.call('HDEL', key, field)
end
for _, field in ipairs(cjson.decode(ARGV[9])) do
  redis.call('HINCRBY', key, field, 1)
end
redis.call('HSET', key, 'version', ARGV[1], 'position', ARGV[2])
if ARGV[10] == '1' then
  redis.call('ZADD', prefix .. 'customer-orders:' .. customer, tonumber(ARGV[2]), doc_id)
end
redis.call('PUBLISH', prefix .. 'customer-changed:' .. customer, ARGV[2])
return 1
"""


class CustomerView(Protocol):
    """Where customer writes land and customers' orders, library and favourites are read."""

    def apply(self, writes: list[CustomerWrite]) -> int: ...

    def orders(
        self, customer_id: str, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]: ...

    def order_count(self, customer_id: str) -> int: ...

    def order(self, order_id: str) -> dict[str, Any] | None: ...

    def library(self, customer_id: str) -> dict[str, Any]: ...

    def favourites(self, customer_id: str) -> dict[str, Any]: ...


def key_patterns(prefix: str) -> list[str]:
    """The SCAN patterns matching every key the view owns under ``prefix``."""
    escaped = glob_escaped(prefix)
    kinds = ("order", "customer-orders", "library", "library-owner")
    return [f"{escaped}{kind}:*" for kind in kinds]


def dump(client: Any, prefix: str) -> dict[str, Any]:
    """Every key of the view under ``prefix`` (without it) -> its full value: a hash's fields,
    a sorted set's members with their scores, a string's value."""
    found: dict[str, Any] = {}
    for pattern in key_patterns(prefix):
        for raw_key in client.scan_iter(match=pattern, count=1000):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            kind = _text(client.type(key))
            if kind == "hash":
                value: Any = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
            elif kind == "zset":
                value = {_text(m): s for m, s in client.zrange(key, 0, -1, withscores=True)}
            elif kind == "string":
                value = _text(client.get(key))
            else:
                value = {"type": kind}
            found[key[len(prefix) :]] = value
    return dict(sorted(found.items()))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCustomerView:
    """Redis; a ``prefix`` lets a rebuild fill a new key space beside the live one."""

    def __init__(self, client: Any, prefix: str = "") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_APPLY)

    def order_key(self, order_id: str) -> str:
        return f"{self._prefix}order:{order_id}"

    def customer_orders(self, customer_id: str) -> str:
        """The sorted set of the customer's orders (score: the position that placed it)."""
        return f"{self._prefix}customer-orders:{customer_id}"

    def library_key(self, customer_id: str) -> str:
        return f"{self._prefix}library:{customer_id}"

    def channel(self, customer_id: str) -> str:
        """Where the new position is published each time one of the customer's documents
        changes."""
        return f"{self._prefix}customer-changed:{customer_id}"

    def apply(self, writes: list[CustomerWrite]) -> int:
        """Apply writes in order; returns how many changed the view (older ones are no-ops)."""
        if not writes:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for write in writes:
            sets, deletes, increments = _changes(write)
            self._script(
                keys=[],
                args=[
                    write.version,
                    write.position,
                    write.doc,
                    write.doc_id,
                    write.customer_id,
                    self._prefix,
                    json.dumps(sets, sort_keys=True),
                    json.dumps(deletes),
                    json.dumps(increments),
                    "1" if write.op == "place" else "0",
                ],
                client=pipe,
            )
        return sum(int(result) for result in pipe.execute())

    def order(self, order_id: str) -> dict[str, Any] | None:
        return order_document(order_id, self._client.hgetall(self.order_key(order_id)))

    def orders(
        self, customer_id: str, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The customer's orders, newest (latest placed) first: ``limit`` of them (None: all)
        from ``offset``."""
        last = -1 if limit is None else offset + limit - 1
        key = self.customer_orders(customer_id)
        ids = [_text(i) for i in self._client.zrevrange(key, offset, last)]
        pipe = self._client.pipeline(transaction=False)
        for order_id in ids:
            pipe.hgetall(self.order_key(order_id))
        raws = pipe.execute() if ids else []
        documents = (order_document(i, raw) for i, raw in zip(ids, raws, strict=True))
        return [document for document in documents if document is not None]

    def order_count(self, customer_id: str) -> int:
        return int(self._client.zcard(self.customer_orders(customer_id)))

    def library(self, customer_id: str) -> dict[str, Any]:
        """Entitlements in force (revoked grants excluded), in grant order; downloads per icon."""
        fields = self._fields(customer_id)
        grants = sorted(
            (json.loads(v) for k, v in fields.items() if k.startswith("grant:")),
            key=lambda grant: grant["position"],
        )
        entitlements = [
            {
                "icon_id": icon["icon_id"],
                "icon_version": icon["icon_version"],
                "order_id": grant["order_id"],
                "granted_at": grant["granted_at"],
            }
            for grant in grants
            for icon in grant["icons"]
        ]
        downloads = {
            k.removeprefix("downloads:"): int(v)
            for k, v in sorted(fields.items())
            if k.startswith("downloads:")
        }
        return {
            "customer_id": customer_id,
            "entitlements": entitlements,
            "downloads": downloads,
            **_stamp(fields),
        }

    def favourites(self, customer_id: str) -> dict[str, Any]:
        """The customer's favourite icon ids, in the order they were added."""
        fields = self._fields(customer_id)
        added = sorted(
            (int(v), k.removeprefix("favourite:"))
            for k, v in fields.items()
            if k.startswith("favourite:")
        )
        return {
            "customer_id": customer_id,
            "icon_ids": [icon_id for _, icon_id in added],
            **_stamp(fields),
        }

    def _fields(self, customer_id: str) -> dict[str, str]:
        raw = self._client.hgetall(self.library_key(customer_id))
        return {_text(k): _text(v) for k, v in raw.items()}


def _stamp(fields: dict[str, str]) -> dict[str, int]:
    return {"version": int(fields.get("version", 0)), "position": int(fields.get("position", 0))}


def _changes(write: CustomerWrite) -> tuple[dict[str, str], list[str], list[str]]:
    """(hash fields to set, fields to delete, counters to increment) of one write."""
    f = write.fields
    sets: dict[str, str] = {}
    deletes: list[str] = []
    increments: list[str] = []
    match write.op:
        case "place":
            sets = {
                "customer_id": write.customer_id,
                "cart_id": f["cart_id"],
                "status": f["status"],
                "placed_at": f["placed_at"],
                "lines": json.dumps(f["lines"], sort_keys=True),
                "total": json.dumps(f["total"], sort_keys=True),
            }
        case "status":
            sets = {"status": f["status"]}
        case "open":
            sets = {
                "customer_id": write.customer_id,
                "library_id": write.doc_id,
                "opened_at": f["opened_at"],
            }
        case "grant":
            grant = {**f, "position": write.position}
            sets = {f"grant:{f['order_id']}": json.dumps(grant, sort_keys=True)}
        case "revoke":
            deletes = [f"grant:{f['order_id']}"]
        case "download":
            increments = [f"downloads:{f['icon_id']}"]
        case "favourite":
            sets = {f"favourite:{f['icon_id']}": str(write.position)}
        case "unfavourite":
            deletes = [f"favourite:{f['icon_id']}"]
        case _:
            raise ValueError(f"unknown customer write op {write.op!r}")
    return sets, deletes, increments


def order_document(order_id: str, raw: dict[Any, Any]) -> dict[str, Any] | None:
    """The order as the API shows it, from the hash's raw fields (None when there is none)."""
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return {
        "id": order_id,
        "customer_id": fields["customer_id"],
        "cart_id": fields["cart_id"],
        "status": fields["status"],
        "lines": json.loads(fields["lines"]),
        "total": json.loads(fields["total"]),
        "placed_at": fields["placed_at"],
        **_stamp(fields),
    }
