"""The IconImport aggregate: the report of one zip batch imported into a set.

Its id derives from the set, the zip's content hash and the request's idempotency key, so a
re-sent zip finds the report of the first one instead of importing twice.
"""

from collections.abc import Sequence
from typing import Self, TypedDict
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.ids import ICONMARKET_NAMESPACE
from domain.traced_aggregate import TracedAggregate

_IMPORTS = uuid5(ICONMARKET_NAMESPACE, "icon-import")


class ImportedIconData(TypedDict):
    """A manifest entry that became an icon."""

    file: str
    icon_id: str


class ImportRejectionData(TypedDict):
    """A manifest entry (or zip file) that did not: the rule it broke and why."""

    file: str
    code: str
    detail: str


def import_id_for(set_id: UUID, zip_hash: str, request_key: str) -> UUID:
    return uuid5(_IMPORTS, f"{set_id}:{zip_hash}:{request_key}")


class IconImport(TracedAggregate):
    """What a zip batch created (``created``) and what it refused, one reason per file."""

    class ImportReported(TracedAggregate.Created):
        set_id: UUID
        owner_id: str
        zip_hash: str
        request_key: str
        created: list[ImportedIconData]
        rejected: list[ImportRejectionData]

    @staticmethod
    def create_id(set_id: UUID, zip_hash: str, request_key: str) -> UUID:
        return import_id_for(set_id, zip_hash, request_key)

    @classmethod
    def report(
        cls,
        *,
        set_id: UUID,
        owner_id: str,
        zip_hash: str,
        request_key: str,
        created: Sequence[ImportedIconData],
        rejected: Sequence[ImportRejectionData],
        actor: str,
        correlation_id: str,
    ) -> Self:
        return cls(
            set_id=set_id,
            owner_id=owner_id,
            zip_hash=zip_hash,
            request_key=request_key,
            created=list(created),
            rejected=list(rejected),
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(ImportReported)
    def __init__(
        self,
        *,
        set_id: UUID,
        owner_id: str,
        zip_hash: str,
        request_key: str,
        created: list[ImportedIconData],
        rejected: list[ImportRejectionData],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._set_id = set_id
        self._owner_id = owner_id
        self._zip_hash = zip_hash
        self._created = list(created)
        self._rejected = list(rejected)

    @property
    def set_id(self) -> UUID:
        return self._set_id

    @property
    def owner_id(self) -> str:
        return self._owner_id

    @property
    def zip_hash(self) -> str:
        return self._zip_hash

    @property
    def created(self) -> tuple[ImportedIconData, ...]:
        return tuple(self._created)

    @property
    def rejected(self) -> tuple[ImportRejectionData, ...]:
        return tuple(self._rejected)
