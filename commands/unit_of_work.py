"""What a handler works with: load aggregates of its context, register the ones it changes."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from commands.applications import Applications, ContextApplication
from commands.errors import AggregateNotFound, VersionConflict

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    """Loads are fresh copies; aggregates loaded with ``get`` or passed to ``add`` are saved."""

    def __init__(self, apps: Applications, context: str) -> None:
        self.apps = apps
        self.app: ContextApplication = apps.by_context(context)
        self._changed: dict[UUID, Aggregate] = {}

    def get(self, cls: type[A], aggregate_id: UUID, *, expected_version: int | None = None) -> A:
        """Load an aggregate of this context to change it; it will be saved with the command."""
        aggregate = self._load(self.app, cls, aggregate_id, skipping=False)
        if expected_version is not None and aggregate.version != expected_version:
            raise VersionConflict(
                f"{cls.__name__} {aggregate_id} is at version {aggregate.version}, "
                f"not the expected {expected_version}"
            )
        self._changed[aggregate.id] = aggregate
        return aggregate

    def exists(self, aggregate_id: UUID) -> bool:
        try:
            self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    @staticmethod
    def read(
        app: ContextApplication, cls: type[A], aggregate_id: UUID, *, current: bool = False
    ) -> A:
        """Load an aggregate (of any context) to read it only.

        When another thread is already bringing the cached copy up to date, this read does not
        queue behind it but takes the cached copy. That copy is as old as the last read of the
        aggregate (saves do not refresh it), so it can miss changes saved long ago: right after
        an icon is published, concurrent reads see it as a draft. A refusal must therefore be
        decided on a ``current`` read, which waits for the copy to be brought up to date.
        """
        return UnitOfWork._load(app, cls, aggregate_id, skipping=not current)

    @staticmethod
    def _load(app: ContextApplication, cls: type[A], aggregate_id: UUID, *, skipping: bool) -> A:
        try:
            aggregate: Aggregate = app.repository.get(aggregate_id, fastforward_skipping=skipping)
        except AggregateNotFoundError:
            raise AggregateNotFound(f"{cls.__name__} {aggregate_id} does not exist") from None
        if not isinstance(aggregate, cls):
            raise AggregateNotFound(f"{aggregate_id} is not a {cls.__name__}")
        return aggregate

    def add(self, aggregate: A) -> A:
        """Register a new aggregate to save."""
        self._changed[aggregate.id] = aggregate
        return aggregate

    def version_of(self, aggregate_id: UUID) -> int:
        """The version of an aggregate this unit loaded or added (after its pending events)."""
        return self._changed[aggregate_id].version

    def changed(self) -> list[Aggregate]:
        return [a for a in self._changed.values() if a.pending_events]
