"""Which Redis key space a projection serves from: ``projection:{name}:prefix`` holds the live
key prefix ("" until a rebuild has switched). A rebuild fills ``{name}-v{n}:`` beside the live
one, then moves the pointer with one SET: readers resolve it on every read (inside the same Lua
script as the read, so it costs no extra round trip)."""

from __future__ import annotations

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
