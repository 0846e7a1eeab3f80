"""Which Redis key space a projection serves from: ``projection:{name}:prefix`` holds the live
key prefix ("" until a rebuild has switched). A rebuild fills ``{name}-v{n}:`` beside the live
one, then moves the pointer with one SET: readers resolve it on every read (inside the same Lua
script as the read, so it costs no extra round trip)."""

from __future__ import annotations

import re
from typing import Any


def pointer_key(projection: str) -> str:
    return f"projection:{projection}:prefix"


def live_prefix(client: Any, projection: str) -> str:
    raw = client.get(pointer_key(projection))
    return raw.decode() if raw else ""


def next_prefix(client: Any, projection: str) -> str:
    """A fresh prefix ``{projection}-v{n}:`` (n counts rebuilds; never reused)."""
    generation = int(client.incr(f"projection:{projection}:generation")) + 1
    return f"{projection}-v{generation}:"


def switch_prefix(client: Any, projection: str, prefix: str) -> str:
    """Make ``prefix`` live atomically; returns the prefix that was live before."""
    old = client.set(pointer_key(projection), prefix, get=True)
    return old.decode() if old else ""


def stale_prefixes(client: Any, projection: str) -> list[str]:
    """The rebuild generations ``{projection}-v{n}:`` that hold keys and are not live."""
    live = live_prefix(client, projection)
    pattern = re.compile(rf"^({re.escape(projection)}-v\d+:)")
    found: set[str] = set()
    for key in client.scan_iter(match=f"{projection}-v*", count=5_000):
        match = pattern.match(key.decode())
        if match and match.group(1) != live:
            found.add(match.group(1))
    return sorted(found)


def glob_escaped(prefix: str) -> str:
    """``prefix`` with Redis glob metacharacters escaped, for ``SCAN MATCH {prefix}*``."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in prefix)


def delete_prefix(client: Any, prefix: str) -> int:
    """Deletes every key under ``prefix``; returns how many."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{glob_escaped(prefix)}*", count=5_000):
        batch.append(key)
        if len(batch) == 1_000:
            deleted += int(client.unlink(*batch))
            batch = []
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted
