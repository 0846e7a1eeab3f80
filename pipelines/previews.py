"""Set and family previews: a grid of up to ``GRID`` icons, composed when their derivatives exist.

Event-driven and debounced, with no fixed delay. The preview stage (its own consumer group on
the catalog topic) keeps a small membership view in Redis: ``Icon.Created`` says which set and
family an icon belongs to; ``Icon.DerivativesRecorded`` with a preview key makes the icon a
member (``Icon.SvgRevised`` and ``Icon.Retired`` remove it until it is rendered again); each
change marks the set and the family dirty with the triggering position. After the batch the
composer takes every dirty set and family once, however many of its icons changed in the batch:
it composes the grid (Pillow) unless the key for the same member hash is already stored, records
it (``RecordIconSetPreview`` / ``RecordFamilyPreview``, idempotent) and clears the mark only if
no newer change marked it meanwhile (compare-and-delete on the position).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands import messages as m
from commands.bus import CommandBus
from pipelines.media_worker import service_context
from pipelines.object_store import ObjectStore
from stream.consumer import Delivery
from stream.envelope import Envelope

log = logging.getLogger("iconmarket.media.previews")

GROUP_ID = "media-previews"
GRID = 9
TILE = 128
GAP = 8
DIRTY = "media:previews:dirty"

# KEYS: the dirty hash. ARGV: field, position. Deletes the mark only if it is still that position.
_CLEAR_IF_SAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
# KEYS: the dirty hash. ARGV: field, position, field, position... Keeps the highest position.
_MARK = """
for i = 1, #ARGV, 2 do
  local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > stored then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""


def _icon_key(icon_id: str) -> str:
    return f"media:icon:{icon_id}"


def members_key(kind: str, owner_id: str) -> str:
    return f"media:{kind}:{owner_id}:members"


@dataclass(frozen=True, slots=True)
class Member:
    icon_id: str
    preview_key: str


def choose(members: dict[str, str], limit: int = GRID) -> list[Member]:
    """The first ``limit`` members by icon id: a stable choice, so a stable member hash."""
    return [Member(icon_id, members[icon_id]) for icon_id in sorted(members)[:limit]]


def member_hash(members: Sequence[Member]) -> str:
    joined = "\n".join(f"{member.icon_id}={member.preview_key}" for member in members)
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


FOLDERS = {"set": "sets", "family": "families"}


def preview_key(kind: str, owner_id: str, digest: str) -> str:
    return f"previews/{FOLDERS[kind]}/{owner_id}/{digest}.png"


def compose_grid(tiles: Sequence[bytes], tile: int = TILE, gap: int = GAP) -> bytes:
    """A square-ish grid of the tiles (each scaled to ``tile`` px) on white, as PNG."""
    from PIL import Image

    if not tiles:
        raise ValueError("a preview needs at least one tile")
    columns = min(3, len(tiles))
    rows = -(-len(tiles) // columns)
    width = columns * tile + (columns + 1) * gap
    height = rows * tile + (rows + 1) * gap
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    for n, data in enumerate(tiles):
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGBA").resize((tile, tile))
        x = gap + (n % columns) * (tile + gap)
        y = gap + (n // columns) * (tile + gap)
        sheet.paste(image, (x, y), image)
    out = io.BytesIO()
    sheet.save(out, "PNG")
    return out.getvalue()


class PreviewComposer:
    """The handler of the preview stage: update memberships, mark dirty, then compose."""

    def __init__(self, bus: CommandBus, redis: Any, public: ObjectStore) -> None:
        self.bus = bus
        self.redis = redis
        self.public = public
        self._mark = redis.register_script(_MARK)
        self._clear = redis.register_script(_CLEAR_IF_SAME)

    def __call__(self, deliveries: Sequence[Delivery], /) -> None:
        marks: dict[str, int] = {}
        for delivery in deliveries:
            event = delivery.event
            for owner in self._apply(event):
                marks[owner] = max(marks.get(owner, 0), event.position)
        if marks:
            self._mark(keys=[DIRTY], args=[v for item in marks.items() for v in item])
        for owner in sorted(marks):
            self.compose(owner)

    def _apply(self, event: Envelope) -> list[str]:
        """Update the membership view; return the sets/families (``set:ID``) it changed."""
        if event.aggregate_type != "Icon":
            return []
        kind = event.type.split(".", 1)[1]
        icon_id = event.aggregate_id
        if kind == "Created":
            self.redis.hset(
                _icon_key(icon_id),
                mapping={"set": str(event.data["set_id"]), "family": str(event.data["family_id"])},
            )
            return []
        owners = self._owners(icon_id)
        if not owners:
            return []
        preview = event.data.get("preview_key") if kind == "DerivativesRecorded" else None
        if kind == "DerivativesRecorded" and preview:
            changed = [
                owner
                for owner in owners
                if self.redis.hget(members_key(*owner.split(":", 1)), icon_id) != preview.encode()
            ]
            for owner in changed:
                self.redis.hset(members_key(*owner.split(":", 1)), icon_id, preview)
            return changed
        if kind in ("SvgRevised", "Retired"):
            return [o for o in owners if self.redis.hdel(members_key(*o.split(":", 1)), icon_id)]
        return []

    def _owners(self, icon_id: str) -> list[str]:
        stored = self.redis.hgetall(_icon_key(icon_id))
        return [f"{kind.decode()}:{owner.decode()}" for kind, owner in sorted(stored.items())]

    def compose(self, owner: str) -> None:
        """Compose and record the preview of ``owner`` (``set:ID`` or ``family:ID``)."""
        mark = self.redis.hget(DIRTY, owner)
        kind, owner_id = owner.split(":", 1)
        raw = self.redis.hgetall(members_key(kind, owner_id))
        members = choose({k.decode(): v.decode() for k, v in raw.items()})
        if members:
            digest = member_hash(members)
            key = preview_key(kind, owner_id, digest)
            if not self.public.exists(key):
                tiles = [self.public.get_bytes(member.preview_key) for member in members]
                self.public.put_bytes(key, compose_grid(tiles), content_type="image/png")
            self._record(kind, UUID(owner_id), key, digest, members)
        if mark is not None:
            self._clear(keys=[DIRTY], args=[owner, mark])

    def _record(
        self, kind: str, owner_id: UUID, key: str, digest: str, members: list[Member]
    ) -> None:
        icon_ids = tuple(UUID(member.icon_id) for member in members)
        command: object
        if kind == "set":
            command = m.RecordIconSetPreview(
                set_id=owner_id, key=key, member_hash=digest, icon_ids=icon_ids
            )
        else:
            command = m.RecordFamilyPreview(
                family_id=owner_id, key=key, member_hash=digest, icon_ids=icon_ids
            )
        self.bus.execute(command, service_context(f"preview:{kind}:{owner_id}"))
