"""Each projection's storage target: the live one the pointer names, new ones for rebuilds.

Redis projections (carts, customers) live under a key prefix named by a pointer key
(`projections.keyspace`); the catalog lives in an index named by the ``catalog`` alias. The live
workers and `infra.rebuild` both write through these, so both apply the same pure projectors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from projections.cart_view import RedisCartView
from projections.carts import apply as project_cart
from projections.catalog import apply as project_catalog
from projections.catalog_alias import (
    CATALOG_ALIAS,
    create_next_index,
    ensure_live_index,
    switch_alias,
)
from projections.catalog_view import OpenSearchCatalogView, create_index
from projections.customer_view import RedisCustomerView
from projections.customers import apply as project_customer
from projections.keyspace import (
    delete_prefix,
    glob_escaped,
    live_prefix,
    next_prefix,
    switch_prefix,
)
from projections.popularity import apply as project_popularity
from projections.popularity_view import PopularityView, copy_popularity
from stream.envelope import Envelope


class Target(Protocol):
    """Where a projection's view lives and how its pointer moves."""

    def live(self) -> str:
        """The target readers use now."""
        ...

    def create(self) -> str:
        """A new, empty target beside the live one; returns its name."""
        ...

    def apply(self, target: str, events: Sequence[Envelope]) -> None:
        """Project ``events`` (pure projector) and write them into ``target``."""
        ...

    def switch(self, target: str) -> str:
        """Make ``target`` live atomically; returns the previously live target."""
        ...

    def settle(self, target: str) -> None:
        """Make what was applied to ``target`` visible to readers."""
        ...

    def shadow(self, name: str) -> str:
        """A new, empty target named after ``name`` (an audit replay), never switched to;
        raises ValueError if it exists already."""
        ...

    def drop(self, target: str) -> int:
        """Delete a shadow target; returns how many keys / documents it held."""
        ...


class RedisTarget:
    """A Redis view under a key prefix per generation, switched by the pointer key."""

    def __init__(
        self,
        client: Any,
        name: str,
        project: Callable[[Envelope], Sequence[Any]],
        view: Callable[[Any, str], Any],
    ) -> None:
        self._client = client
        self._name = name
        self._project = project
        self._view = view

    def live(self) -> str:
        return live_prefix(self._client, self._name)

    def create(self) -> str:
        return next_prefix(self._client, self._name)

    def apply(self, target: str, events: Sequence[Envelope]) -> None:
        writes = [write for event in events for write in self._project(event)]
        if writes:
            self._view(self._client, target).apply(writes)

    def switch(self, target: str) -> str:
        return switch_prefix(self._client, self._name, target)

    def settle(self, target: str) -> None:
        """Redis writes are visible as soon as they are acknowledged."""

    def shadow(self, name: str) -> str:
        prefix = shadow_prefix(self._name, name)
        if next(iter(self._client.scan_iter(match=f"{glob_escaped(prefix)}*", count=1000)), None):
            raise ValueError(f"the key prefix {prefix!r} is in use already")
        return prefix

    def drop(self, target: str) -> int:
        if not target.startswith(SHADOW_PREFIX):
            raise ValueError(f"{target!r} is not a shadow key prefix")
        return delete_prefix(self._client, target)


class PopularityTarget(RedisTarget):
    """Counts in Redis, copied onto the catalog: settling refreshes the catalog index too, so a
    recorded popularity position is also visible to catalog searches."""

    def __init__(self, client: Any, opensearch: Any) -> None:
        super().__init__(
            client,
            "popularity",
            project_popularity,
            lambda c, p: PopularityView(c, opensearch, prefix=p, index=_catalog_alias(opensearch)),
        )
        self._opensearch = opensearch

    def settle(self, target: str) -> None:
        self._opensearch.indices.refresh(index=CATALOG_ALIAS)


class CatalogTarget:
    """The catalog: an index version per generation, switched by the alias.

    Icon popularity is counted by its own projection (from the commerce log) and written onto
    the live index; a new index gets every count copied when it is created and again right after
    the switch (for counts that changed meanwhile; the copies are guarded, so repeats are no-ops).
    """

    def __init__(self, client: Any, redis: Any) -> None:
        self._client = client
        self._redis = redis

    def live(self) -> str:
        return ensure_live_index(self._client, CATALOG_ALIAS)

    def create(self) -> str:
        self.live()
        created = create_next_index(self._client, CATALOG_ALIAS)
        self._copy_popularity(created)
        return created

    def _copy_popularity(self, index: str) -> None:
        prefix = live_prefix(self._redis, "popularity")
        copy_popularity(PopularityView(self._redis, self._client, prefix), self._client, index)

    def apply(self, target: str, events: Sequence[Envelope]) -> None:
        writes = [write for event in events for write in project_catalog(event)]
        if writes:
            OpenSearchCatalogView(self._client, target).apply(writes)

    def switch(self, target: str) -> str:
        previous = switch_alias(self._client, target, CATALOG_ALIAS) or ""
        self._copy_popularity(target)
        return previous

    def settle(self, target: str) -> None:
        """Search sees writes only after a refresh; the position is recorded after this, so
        a query that waited for it finds the change."""
        self._client.indices.refresh(index=target)

    def shadow(self, name: str) -> str:
        index = shadow_index(name)
        if self._client.indices.exists(index=index):
            raise ValueError(f"the index {index!r} exists already")
        create_index(self._client, index)
        return index

    def drop(self, target: str) -> int:
        if not target.startswith(f"{CATALOG_ALIAS}-{SHADOW_PREFIX.rstrip(':')}-"):
            raise ValueError(f"{target!r} is not a shadow index")
        if not self._client.indices.exists(index=target):
            return 0
        count = int(self._client.count(index=target)["count"])
        self._client.indices.delete(index=target)
        return count


def _catalog_alias(opensearch: Any) -> str:
    """The alias popularity counts are written through, made to exist first: a write to a
    missing alias would create a plain index of that name instead."""
    ensure_live_index(opensearch, CATALOG_ALIAS)
    return CATALOG_ALIAS


SHADOW_PREFIX = "audit:"
_SHADOW_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


def check_shadow_name(name: str) -> str:
    """Shadow names become key prefixes and index names: lowercase letters, digits, - and _."""
    if not _SHADOW_NAME.match(name):
        raise ValueError(
            f"shadow name {name!r}: use 1-48 lowercase letters, digits, - and _ "
            "(starting with a letter or digit)"
        )
    return name


def shadow_prefix(projection: str, name: str) -> str:
    """The key prefix of a Redis projection's shadow ``name``: ``audit:{name}:{projection}:``."""
    return f"{SHADOW_PREFIX}{check_shadow_name(name)}:{projection}:"


def shadow_index(name: str) -> str:
    """The catalog's shadow index ``name``: ``catalog-audit-{name}``."""
    return f"{CATALOG_ALIAS}-{SHADOW_PREFIX.rstrip(':')}-{check_shadow_name(name)}"


def shadow_of(projection: str, name: str) -> str:
    """Where ``projection``'s shadow ``name`` lives: an index (catalog) or a key prefix."""
    return shadow_index(name) if projection == "catalog" else shadow_prefix(projection, name)


def target_for(name: str, redis: Any, opensearch: Any) -> Target:
    if name == "carts":
        return RedisTarget(redis, "carts", project_cart, lambda c, p: RedisCartView(c, prefix=p))
    if name == "customers":
        return RedisTarget(
            redis, "customers", project_customer, lambda c, p: RedisCustomerView(c, prefix=p)
        )
    if name == "catalog":
        return CatalogTarget(opensearch, redis)
    if name == "popularity":
        return PopularityTarget(redis, opensearch)
    raise ValueError(f"unknown projection {name!r}")


def apply_live(target: Target, events: Sequence[Envelope]) -> None:
    """Apply to the live target; if a rebuild switched it meanwhile, apply to the new one too
    (writes are version-guarded, so a second application is harmless)."""
    current = target.live()
    while True:
        target.apply(current, events)
        target.settle(current)
        moved = target.live()
        if moved == current:
            return
        current = moved
