"""Where each projection got to, in Redis: the highest position it applied per source log, and
per partition the offset after the last message it applied (the log watermark's other half,
`stream.watermark`: read-your-writes compares those offsets with the relay's marks).

Recorded right after the view write of each batch, so what is recorded is always applied.
Both only move forward (a Lua max), and each advance is published on the projection's channel
so read-your-writes waiters wake without polling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stream.envelope import Envelope
from stream.watermark import partition_key

# KEYS: the positions hash, the change channel, the offsets hash. ARGV: how many position
# pairs, then log, position, ..., then partition, next offset, ...
_RECORD = """
local advanced = 0
local pairs = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local hash = KEYS[1]
  if i > 2 * pairs then hash = KEYS[3] end
  local stored = tonumber(redis.call('HGET', hash, ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > stored then
    redis.call('HSET', hash, ARGV[i], ARGV[i + 1])
    advanced = advanced + 1
  end
end
if advanced > 0 then redis.call('PUBLISH', KEYS[2], advanced) end
return advanced
"""


def highest_positions(events: Iterable[Envelope]) -> dict[str, int]:
    """The highest position per source log (bounded context) among ``events``."""
    highest: dict[str, int] = {}
    for event in events:
        if event.position > highest.get(event.context, 0):
            highest[event.context] = event.position
    return highest


def next_offsets(deliveries: Iterable[Any]) -> dict[str, int]:
    """Per partition (`stream.watermark.partition_key`), the offset after the last of
    ``deliveries`` (anything with ``topic``, ``partition`` and ``offset``)."""
    ends: dict[str, int] = {}
    for delivery in deliveries:
        where = partition_key(delivery.topic, delivery.partition)
        if delivery.offset + 1 > ends.get(where, 0):
            ends[where] = delivery.offset + 1
    return ends


class ProjectionPositions:
    """Per projection, per source log: the last position applied."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._script = client.register_script(_RECORD)

    @staticmethod
    def key(projection: str) -> str:
        return f"projection:{projection}:positions"

    @staticmethod
    def channel(projection: str) -> str:
        return f"projection:{projection}:advanced"

    @staticmethod
    def offsets_key(projection: str) -> str:
        return f"projection:{projection}:offsets"

    def record(
        self,
        projection: str,
        positions: Mapping[str, int],
        offsets: Mapping[str, int] | None = None,
    ) -> int:
        """Advance the stored positions and next offsets (never backwards); returns how many
        advanced."""
        offsets = offsets or {}
        if not positions and not offsets:
            return 0
        args: list[str | int] = [len(positions)]
        for name, value in [*sorted(positions.items()), *sorted(offsets.items())]:
            args += [name, value]
        keys = [self.key(projection), self.channel(projection), self.offsets_key(projection)]
        return int(self._script(keys=keys, args=args))

    def get(self, projection: str) -> dict[str, int]:
        raw = self._client.hgetall(self.key(projection))
        return {k.decode(): int(v) for k, v in raw.items()}

    def offsets(self, projection: str) -> dict[str, int]:
        raw = self._client.hgetall(self.offsets_key(projection))
        return {k.decode(): int(v) for k, v in raw.items()}
