"""The Family aggregate: a contributor's collection of icon sets."""

from collections.abc import Iterable
from typing import Self
from uuid import UUID

from eventsourcing.domain import event

from domain.preview import Previewed, PreviewState
from domain.publication import PublicationStatus, check_publication_transition
from domain.text import clean_labels, clean_name
from domain.traced_aggregate import TracedAggregate


class Family(Previewed, TracedAggregate):
    class Created(TracedAggregate.Created):
        owner_id: str
        name: str
        description: str
        categories: list[str]
        tags: list[str]

    class DetailsUpdated(TracedAggregate.Event):
        name: str
        description: str
        categories: list[str]
        tags: list[str]

    class Published(TracedAggregate.Event):
        pass

    class Unpublished(TracedAggregate.Event):
        pass

    class PreviewRecorded(TracedAggregate.Event):
        """A composed grid preview (public bucket ``key``) of ``icon_ids`` from the family's
        sets, whose keys hash to ``member_hash``."""

        key: str
        member_hash: str
        icon_ids: list[UUID]

    @classmethod
    def create(
        cls,
        *,
        owner_id: str,
        name: str,
        description: str = "",
        categories: Iterable[str] = (),
        tags: Iterable[str] = (),
        actor: str,
        correlation_id: str,
    ) -> Self:
        return cls(
            owner_id=owner_id,
            name=clean_name(name),
            description=description.strip(),
            categories=clean_labels(categories),
            tags=clean_labels(tags),
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Created)
    def __init__(
        self,
        *,
        owner_id: str,
        name: str,
        description: str,
        categories: list[str],
        tags: list[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._owner_id = owner_id
        self._name = name
        self._description = description
        self._categories = list(categories)
        self._tags = list(tags)
        self._status = PublicationStatus.DRAFT.value
        self._preview: PreviewState | None = None

    @property
    def owner_id(self) -> str:
        return self._owner_id

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self._categories)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._tags)

    @property
    def status(self) -> PublicationStatus:
        return PublicationStatus(self._status)

    def update_details(
        self,
        *,
        name: str,
        description: str,
        categories: Iterable[str],
        tags: Iterable[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._details_updated(
            name=clean_name(name),
            description=description.strip(),
            categories=clean_labels(categories),
            tags=clean_labels(tags),
            actor=actor,
            correlation_id=correlation_id,
        )

    def publish(self, *, actor: str, correlation_id: str) -> None:
        self._check_transition(PublicationStatus.PUBLISHED)
        self._published(actor=actor, correlation_id=correlation_id)

    def unpublish(self, *, actor: str, correlation_id: str) -> None:
        self._check_transition(PublicationStatus.UNPUBLISHED)
        self._unpublished(actor=actor, correlation_id=correlation_id)

    def _check_transition(self, target: PublicationStatus) -> None:
        check_publication_transition("Family", self.status, target)

    @event(DetailsUpdated)
    def _details_updated(
        self,
        *,
        name: str,
        description: str,
        categories: list[str],
        tags: list[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._name = name
        self._description = description
        self._categories = list(categories)
        self._tags = list(tags)

    @event(Published)
    def _published(self, *, actor: str, correlation_id: str) -> None:
        self._status = PublicationStatus.PUBLISHED.value

    @event(Unpublished)
    def _unpublished(self, *, actor: str, correlation_id: str) -> None:
        self._status = PublicationStatus.UNPUBLISHED.value

    @event(PreviewRecorded)
    def _preview_recorded(
        self, *, key: str, member_hash: str, icon_ids: list[UUID], actor: str, correlation_id: str
    ) -> None:
        self._preview = {"key": key, "member_hash": member_hash, "icon_ids": list(icon_ids)}
