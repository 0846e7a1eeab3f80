"""Where each projection got to: the highest position it applied per source log, in Redis.

Recorded right after the view write of each batch, so a recorded position is always applied.
Positions only move forward (a Lua max), and each advance is published on the projection's
channel so read-your-writes waiters wake without polling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stream.envelope import Envelope

# KEYS: the positions hash, the change channel. ARGV: log, position, log, position, ...
_RECORD = """
local advanced = 0
for i = 1, #ARGV, 2 do
  local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > stored then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('PUBLISH', KEYS[2], ARGV[i] .. ':' .. ARGV[i + 1])
    advanced = advanced + 1
  end
end
return advanced
"""


def highest_positions(events: Iterable[Envelope]) -> dict[str, int]:
    """The highest position per source log (bounded context) among ``events``."""
    highest: dict[str, int] = {}
    for event in events:
        if event.position > highest.get(event.context, 0):
            highest[event.context] = event.position
    return highest


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

    def record(self, projection: str, positions: Mapping[str, int]) -> int:
        """Advance the stored positions (never backwards); returns how many logs advanced."""
        if not positions:
            return 0
        args = [item for log, position in sorted(positions.items()) for item in (log, position)]
        return int(self._script(keys=[self.key(projection), self.channel(projection)], args=args))

    def get(self, projection: str) -> dict[str, int]:
        raw = self._client.hgetall(self.key(projection))
        return {k.decode(): int(v) for k, v in raw.items()}
