"""The per-customer read models in Redis: orders, library and favourites. Permanent: no TTL.

Keys (all under ``prefix``, so a rebuild can fill a new key space beside the live one):

- ``order:{order_id}`` (hash): ``customer_id``, ``cart_id``, ``status``, ``placed_at`` (strings),
  ``lines`` and ``total`` (JSON), ``version`` and ``position`` (of the last event applied).
- ``customer-orders:{customer}`` (sorted set): the customer's order ids, scored by the position
  of their ``Order.Placed``.
- ``library:{customer}`` (hash): ``customer_id``, ``library_id``, ``opened_at``,
  ``grant:{order_id}`` (JSON: order id, icons, granted_at, position; deleted when revoked),
  ``downloads:{icon_id}`` (a count), ``version`` and ``position``.
- ``entitlements:{customer}`` (sorted set): one member ``{order_id}~{n}`` per icon of each grant
  in force (n: the icon's index in the grant, five digits), scored by the grant's position, so a
  page of the library is a range of it (grant order, then the grant's own order).
- ``favourites:{customer}`` (sorted set): the favourite icon ids, scored by the position that
  added them, so a page of favourites is a range of it.
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
#       index ('1': add the order to the customer's orders),
#       sorted-set adds (JSON array of [set, score, member]), removals ([set, member]),
#       revoked order ('' or the order whose grant's entitlement members go).
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
local function sorted_set(name) return prefix .. name .. ':' .. customer end
local revoked = ARGV[13]
if revoked ~= '' then
  local grant = redis.call('HGET', key, 'grant:' .. revoked)
  if grant then
    for n = 1, #cjson.decode(grant)['icons'] do
      local member = revoked .. '~' .. string.format('%05d', n - 1)
      redis.call('ZREM', sorted_set('entitlements'), member)
    end
  end
end
for _, add in ipairs(cjson.decode(ARGV[11])) do
  redis.call('ZADD', sorted_set(add[1]), tonumber(add[2]), add[3])
end
for _, removal in ipairs(cjson.decode(ARGV[12])) do
  redis.call('ZREM', sorted_set(removal[1]), removal[2])
end
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

    def library(
        self, customer_id: str, offset: int = 0, limit: int | None = None
    ) -> dict[str, Any]: ...

    def favourites(
        self, customer_id: str, offset: int = 0, limit: int | None = None
    ) -> dict[str, Any]: ...


def key_patterns(prefix: str) -> list[str]:
    """The SCAN patterns matching every key the view owns under ``prefix``."""
    escaped = glob_escaped(prefix)
    kinds = ("order", "customer-orders", "library", "library-owner", "entitlements", "favourites")
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
            adds, removals, revoked = _indexed(write)
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
                    json.dumps(adds),
                    json.dumps(removals),
                    revoked,
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

    def entitlements_key(self, customer_id: str) -> str:
        return f"{self._prefix}entitlements:{customer_id}"

    def favourites_key(self, customer_id: str) -> str:
        return f"{self._prefix}favourites:{customer_id}"

    def library(
        self, customer_id: str, offset: int = 0, limit: int | None = None
    ) -> dict[str, Any]:
        """Entitlements in force (revoked grants excluded), in grant order: ``limit`` of them
        (None: all) from ``offset``, with ``total`` counting all of them, and the download
        counts of the page's icons. The work is bounded by the page, not the library."""
        key, members, total, stamp = self._range(
            customer_id, self.entitlements_key(customer_id), offset, limit
        )
        places = [member.rsplit("~", 1) for member in members]
        orders = sorted({order_id for order_id, _ in places})
        raws = self._client.hmget(key, [f"grant:{o}" for o in orders]) if orders else []
        grants = {o: json.loads(_text(raw)) for o, raw in zip(orders, raws, strict=True) if raw}
        entitlements = [
            {
                "icon_id": grant["icons"][int(index)]["icon_id"],
                "icon_version": grant["icons"][int(index)]["icon_version"],
                "order_id": order_id,
                "granted_at": grant["granted_at"],
            }
            for order_id, index in places
            if (grant := grants.get(order_id)) is not None  # None: revoked between the reads
        ]
        icons = sorted({entitlement["icon_id"] for entitlement in entitlements})
        counts = self._client.hmget(key, [f"downloads:{i}" for i in icons]) if icons else []
        downloads = {i: int(n) for i, n in zip(icons, counts, strict=True) if n is not None}
        return {
            "customer_id": customer_id,
            "entitlements": entitlements,
            "downloads": downloads,
            "total": total,
            **stamp,
        }

    def favourites(
        self, customer_id: str, offset: int = 0, limit: int | None = None
    ) -> dict[str, Any]:
        """The customer's favourite icon ids in the order they were added: ``limit`` of them
        (None: all) from ``offset``, with ``total`` counting all of them."""
        _, members, total, stamp = self._range(
            customer_id, self.favourites_key(customer_id), offset, limit
        )
        return {"customer_id": customer_id, "icon_ids": members, "total": total, **stamp}

    def _range(
        self, customer_id: str, sorted_set: str, offset: int, limit: int | None
    ) -> tuple[str, list[str], int, dict[str, int]]:
        """(the library's key, the sorted set's members from ``offset``, its size, the
        library's version and position), read in one transaction."""
        key = self.library_key(customer_id)
        last = -1 if limit is None else offset + limit - 1
        pipe = self._client.pipeline(transaction=True)
        pipe.zrange(sorted_set, offset, last)
        pipe.zcard(sorted_set)
        pipe.hmget(key, ["version", "position"])
        members, total, (version, position) = pipe.execute()
        stamp = _stamp({"version": _text(version or 0), "position": _text(position or 0)})
        return key, [_text(member) for member in members], int(total), stamp


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
        case "favourite" | "unfavourite":
            pass  # the favourites sorted set only: see _indexed
        case _:
            raise ValueError(f"unknown customer write op {write.op!r}")
    return sets, deletes, increments


def _indexed(write: CustomerWrite) -> tuple[list[list[Any]], list[list[str]], str]:
    """(sorted-set adds, removals, the revoked order or '') of one write: the indexes a page of
    the library or the favourites is read from."""
    f = write.fields
    match write.op:
        case "grant":
            members = [f"{f['order_id']}~{n:05d}" for n in range(len(f["icons"]))]
            return [["entitlements", write.position, member] for member in members], [], ""
        case "revoke":
            return [], [], str(f["order_id"])
        case "favourite":
            return [["favourites", write.position, str(f["icon_id"])]], [], ""
        case "unfavourite":
            return [], [["favourites", str(f["icon_id"])]], ""
        case _:
            return [], [], ""


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
