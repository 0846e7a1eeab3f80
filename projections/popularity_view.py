"""Icon popularity: exact counts in Redis, copied onto the catalog documents in OpenSearch.

Keys (all under ``prefix``, so a rebuild can fill a new key space beside the live one):

- ``pop-library:{library_id}`` (hash): ``version`` (of the last library event applied) and
  ``grant:{order_id}`` (JSON: the icons that grant counts for, until it is revoked);
- ``pop-icon:{icon_id}`` (hash): ``purchases``, ``downloads`` and ``seq`` (how many changes were
  counted; it only grows, and every replay of the same history reaches the same value);
- ``pop-icons`` (set): every icon that has counts;
- ``pop-uncopied`` (hash): ``icon_id`` → the ``seq`` counted but not yet copied to the catalog.

One Lua script applies a batch: each write only when its version is newer than its library's, so
redelivery and replay count nothing twice. Every icon it changes is marked uncopied in the same
script, and the script returns the counts of every uncopied icon (so a redelivery, whose writes
are all stale, still copies what an earlier failed catalog write left behind). They are written
onto ``icon:{id}`` in the catalog index as a ``popularity`` patch guarded by ``seq`` (the same
per-source version guard as the icon, set and family patches), so an older copy never overwrites
a newer one; only after that write succeeds is an icon's mark removed, and only if its ``seq`` is
still the one copied. A catalog rebuild copies all counts into its new index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from projections.catalog import CatalogWrite, icon_doc_id
from projections.catalog_view import OpenSearchCatalogView
from projections.popularity import PopularityWrite

COPY_PAGE = 1_000

# ARGV: prefix, JSON array of [library_id, version, op, order_id, [icon ids]].
# Returns a JSON array of [icon_id, purchases, downloads, seq] for each icon not yet copied (those
# it changed and those an earlier failed copy left marked).
_APPLY = """
local prefix = ARGV[1]
local uncopied = prefix .. 'pop-uncopied'
for _, w in ipairs(cjson.decode(ARGV[2])) do
  local library = prefix .. 'pop-library:' .. w[1]
  if w[2] > tonumber(redis.call('HGET', library, 'version') or '0') then
    local field, delta, icons = 'purchases', 1, w[5]
    if w[3] == 'grant' then
      redis.call('HSET', library, 'grant:' .. w[4], cjson.encode(icons))
    elseif w[3] == 'revoke' then
      local held = redis.call('HGET', library, 'grant:' .. w[4])
      icons = {}
      if held then
        icons = cjson.decode(held)
        redis.call('HDEL', library, 'grant:' .. w[4])
      end
      delta = -1
    else
      -- a customer's repeated downloads of one icon count once
      field = 'downloads'
      local first = {}
      for _, icon in ipairs(icons) do
        if redis.call('HSETNX', library, 'downloaded:' .. icon, 1) == 1 then
          table.insert(first, icon)
        end
      end
      icons = first
    end
    for _, icon in ipairs(icons) do
      local key = prefix .. 'pop-icon:' .. icon
      redis.call('HINCRBY', key, field, delta)
      redis.call('HINCRBY', key, 'seq', 1)
      redis.call('SADD', prefix .. 'pop-icons', icon)
      redis.call('HSET', uncopied, icon, redis.call('HGET', key, 'seq'))
    end
    redis.call('HSET', library, 'version', w[2])
  end
end
local out = {}
for _, icon in ipairs(redis.call('HKEYS', uncopied)) do
  local v = redis.call('HMGET', prefix .. 'pop-icon:' .. icon, 'purchases', 'downloads', 'seq')
  table.insert(out, {icon, tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0')})
end
if #out == 0 then return '[]' end
return cjson.encode(out)
"""

# KEYS[1]: the uncopied hash; ARGV: JSON array of [icon_id, seq] just copied. Unmarks an icon only
# if no later change was counted meanwhile (that one still has to be copied).
_COPIED = """
for _, c in ipairs(cjson.decode(ARGV[1])) do
  if redis.call('HGET', KEYS[1], c[1]) == tostring(c[2]) then
    redis.call('HDEL', KEYS[1], c[1])
  end
end
return 0
"""

Counts = tuple[str, int, int, int]


def popularity_write(icon_id: str, purchases: int, downloads: int, seq: int) -> CatalogWrite:
    """The catalog patch carrying an icon's counts; ``position`` 0 leaves the document's catalog
    position (read-your-writes) alone, since these counts come from another log."""
    return CatalogWrite(
        doc_id=icon_doc_id(icon_id),
        source="popularity",
        source_id=icon_id,
        version=seq,
        position=0,
        fields={"purchases": purchases, "downloads": downloads},
    )


class PopularityView:
    """Counts in Redis under ``prefix``; each change copied onto the catalog ``index`` (the
    live alias by default)."""

    def __init__(self, client: Any, opensearch: Any, prefix: str = "", index: str = "catalog"):
        self._client = client
        self._catalog = OpenSearchCatalogView(opensearch, index)
        self._prefix = prefix
        self._script = client.register_script(_APPLY)
        self._copied = client.register_script(_COPIED)

    def apply(self, writes: Sequence[PopularityWrite]) -> int:
        """Counts ``writes`` and copies every uncopied icon's counts (those it changed, and
        those a failed copy left behind); returns how many icons it copied."""
        if not writes:
            return 0
        batch = [[w.library_id, w.version, w.op, w.order_id, list(w.icon_ids)] for w in writes]
        raw = self._script(args=[self._prefix, json.dumps(batch)])
        rows = [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in json.loads(raw)]
        if rows:
            self._catalog.apply([popularity_write(*row) for row in rows])
            copied = [[icon_id, seq] for icon_id, _, _, seq in rows]
            self._copied(keys=[f"{self._prefix}pop-uncopied"], args=[json.dumps(copied)])
        return len(rows)

    def uncopied(self) -> dict[str, int]:
        """Icons whose counted ``seq`` is not yet known to be on the catalog."""
        raw = self._client.hgetall(f"{self._prefix}pop-uncopied")
        return {k.decode(): int(v) for k, v in raw.items()}

    def counts(self, icon_id: str) -> dict[str, int]:
        raw = self._client.hgetall(f"{self._prefix}pop-icon:{icon_id}")
        fields = {k.decode(): int(v) for k, v in raw.items()}
        return {name: fields.get(name, 0) for name in ("purchases", "downloads", "seq")}

    def all_counts(self) -> Iterator[list[Counts]]:
        """Every icon's counts, a page at a time."""
        page: list[str] = []
        for member in self._client.sscan_iter(f"{self._prefix}pop-icons", count=COPY_PAGE):
            page.append(member.decode())
            if len(page) == COPY_PAGE:
                yield self._read(page)
                page = []
        if page:
            yield self._read(page)

    def _read(self, icon_ids: list[str]) -> list[Counts]:
        pipe = self._client.pipeline(transaction=False)
        for icon_id in icon_ids:
            pipe.hmget(f"{self._prefix}pop-icon:{icon_id}", "purchases", "downloads", "seq")
        return [
            (icon_id, int(p or 0), int(d or 0), int(s or 0))
            for icon_id, (p, d, s) in zip(icon_ids, pipe.execute(), strict=True)
        ]


def copy_popularity(view: PopularityView, opensearch: Any, index: str) -> int:
    """Writes every icon's counts onto ``index`` (a catalog rebuild's new index); guarded by
    ``seq``, so copying twice, or racing the live projector, changes nothing."""
    catalog = OpenSearchCatalogView(opensearch, index)
    copied = 0
    for page in view.all_counts():
        catalog.apply([popularity_write(*row) for row in page])
        copied += len(page)
    return copied
