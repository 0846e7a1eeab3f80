"""The catalog's versioned indices behind one alias: ``catalog`` → ``catalog-v{n}``.

Queries and the live projection address the alias; a rebuild fills ``catalog-v{n+1}`` beside the
live index and then moves the alias in one atomic ``_aliases`` call.
"""

from __future__ import annotations

import re
from typing import Any

from projections.catalog_view import create_index

CATALOG_ALIAS = "catalog"


def _versions(client: Any, alias: str) -> dict[int, str]:
    pattern = re.compile(rf"^{re.escape(alias)}-v(\d+)$")
    names = client.indices.get(index=f"{alias}-v*", ignore_unavailable=True, allow_no_indices=True)
    return {int(match.group(1)): name for name in names if (match := pattern.match(name))}


def live_index(client: Any, alias: str = CATALOG_ALIAS) -> str | None:
    """The index the alias points at, or None when there is no alias yet."""
    if not client.indices.exists_alias(name=alias):
        return None
    return str(next(iter(client.indices.get_alias(name=alias))))


def ensure_live_index(client: Any, alias: str = CATALOG_ALIAS) -> str:
    """The live index, creating ``{alias}-v1`` and the alias on first use (idempotent)."""
    live = live_index(client, alias)
    if live is not None:
        return live
    first = f"{alias}-v1"
    if not client.indices.exists(index=first):
        create_index(client, first)
    client.indices.update_aliases(body={"actions": [{"add": {"index": first, "alias": alias}}]})
    return first


def create_next_index(client: Any, alias: str = CATALOG_ALIAS) -> str:
    """A new, empty ``{alias}-v{n+1}`` (n: the highest version that exists)."""
    versions = _versions(client, alias)
    name = f"{alias}-v{max(versions, default=0) + 1}"
    create_index(client, name)
    return name


def switch_alias(client: Any, new_index: str, alias: str = CATALOG_ALIAS) -> str | None:
    """Point the alias at ``new_index`` atomically; returns the index it pointed at before."""
    old = live_index(client, alias)
    actions: list[dict[str, Any]] = [{"add": {"index": new_index, "alias": alias}}]
    if old is not None:
        actions.insert(0, {"remove": {"index": old, "alias": alias}})
    client.indices.update_aliases(body={"actions": actions})
    return old


def stale_indices(client: Any, alias: str = CATALOG_ALIAS) -> list[str]:
    """The ``{alias}-v{n}`` indices the alias does not point at (earlier generations)."""
    live = live_index(client, alias)
    return [name for _, name in sorted(_versions(client, alias).items()) if name != live]
