"""Each projection's storage target: the live one the pointer names, new ones for rebuilds.

Redis projections (carts, customers) live under a key prefix named by a pointer key
(`projections.keyspace`); the catalog lives in an index named by the ``catalog`` alias. The live
workers and `infra.rebuild` both write through these, so both apply the same pure projectors.
"""

from __future__ import annotations

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
from projections.catalog_view import OpenSearchCatalogView
from projections.customer_view import RedisCustomerView
from projections.customers import apply as project_customer
from projections.keyspace import live_prefix, next_prefix, switch_prefix
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


class CatalogTarget:
    """The catalog: an index version per generation, switched by the alias."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def live(self) -> str:
        return ensure_live_index(self._client, CATALOG_ALIAS)

    def create(self) -> str:
        self.live()
        return create_next_index(self._client, CATALOG_ALIAS)

    def apply(self, target: str, events: Sequence[Envelope]) -> None:
        writes = [write for event in events for write in project_catalog(event)]
        if writes:
            OpenSearchCatalogView(self._client, target).apply(writes)

    def switch(self, target: str) -> str:
        return switch_alias(self._client, target, CATALOG_ALIAS) or ""

    def settle(self, target: str) -> None:
        """Search sees writes only after a refresh; the position is recorded after this, so
        a query that waited for it finds the change."""
        self._client.indices.refresh(index=target)


def target_for(name: str, redis: Any, opensearch: Any) -> Target:
    if name == "carts":
        return RedisTarget(redis, "carts", project_cart, lambda c, p: RedisCartView(c, prefix=p))
    if name == "customers":
        return RedisTarget(
            redis, "customers", project_customer, lambda c, p: RedisCustomerView(c, prefix=p)
        )
    if name == "catalog":
        return CatalogTarget(opensearch)
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
