"""The IconImport aggregate: one zip batch imported into a set, from its request to its report.

Its id derives from the set, the zip's content hash and the request's idempotency key, so a
re-sent zip finds the import of the first one instead of importing twice.

Life cycle: ``ImportRequested`` (the API stored the zip in staging and answered 202; status
``pending``), then exactly one of ``ImportCompleted`` (the report: icons created, one reason per
refused file; status ``done``) or ``ImportRefused`` (the zip as a whole broke a rule, whose
``code`` it records; nothing was created; status ``refused``), both recorded by the import
worker. ``ImportReported`` is the creation event of imports made before imports were processed
by a worker (request and report at once, status ``done``): kept so their history replays.
"""

from collections.abc import Sequence
from enum import StrEnum
from typing import Self, TypedDict
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.errors import IllegalTransition
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


class ImportStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    REFUSED = "refused"


def import_id_for(set_id: UUID, zip_hash: str, request_key: str) -> UUID:
    return uuid5(_IMPORTS, f"{set_id}:{zip_hash}:{request_key}")


class IconImport(TracedAggregate):
    """A zip batch: what was asked (the staged zip), then what it created (``created``) and
    what it refused, one reason per file, or why the zip was refused as a whole."""

    class ImportRequested(TracedAggregate.Created):
        set_id: UUID
        owner_id: str
        zip_hash: str
        request_key: str
        zip_key: str
        size_bytes: int
        roles: list[str]

    class ImportCompleted(TracedAggregate.Event):
        created: list[ImportedIconData]
        rejected: list[ImportRejectionData]

    class ImportRefused(TracedAggregate.Event):
        code: str
        detail: str

    class ImportReported(TracedAggregate.Created):
        """Before imports had a worker: requested and reported at once (history only)."""

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
    def request(
        cls,
        *,
        set_id: UUID,
        owner_id: str,
        zip_hash: str,
        request_key: str,
        zip_key: str,
        size_bytes: int,
        roles: Sequence[str],
        actor: str,
        correlation_id: str,
    ) -> Self:
        """A pending import of the zip staged at ``zip_key``, to run as ``actor`` with the
        ``roles`` it had when the API authorized the request."""
        # ``_create`` with the event class: ``__init__`` also applies the legacy ImportReported,
        # so it has optional parameters, which the aggregate's call path would require.
        return cls._create(
            cls.ImportRequested,
            set_id=set_id,
            owner_id=owner_id,
            zip_hash=zip_hash,
            request_key=request_key,
            zip_key=zip_key,
            size_bytes=size_bytes,
            roles=sorted(roles),
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(ImportRequested)
    def __init__(
        self,
        *,
        set_id: UUID,
        owner_id: str,
        zip_hash: str,
        request_key: str,
        actor: str,
        correlation_id: str,
        zip_key: str = "",
        size_bytes: int = 0,
        roles: list[str] | None = None,
        created: list[ImportedIconData] | None = None,
        rejected: list[ImportRejectionData] | None = None,
    ) -> None:
        # ``created``/``rejected`` are given by the legacy ImportReported only.
        self._set_id = set_id
        self._owner_id = owner_id
        self._zip_hash = zip_hash
        self._request_key = request_key
        self._requested_by = actor
        self._correlation_id = correlation_id
        self._zip_key = zip_key
        self._size_bytes = size_bytes
        self._roles = list(roles or ())
        self._created = list(created or ())
        self._rejected = list(rejected or ())
        self._status = ImportStatus.PENDING.value if created is None else ImportStatus.DONE.value
        self._refusal: dict[str, str] | None = None

    def complete(
        self,
        *,
        created: Sequence[ImportedIconData],
        rejected: Sequence[ImportRejectionData],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._check_pending(ImportStatus.DONE)
        self._completed(
            created=list(created),
            rejected=list(rejected),
            actor=actor,
            correlation_id=correlation_id,
        )

    def refuse(self, *, code: str, detail: str, actor: str, correlation_id: str) -> None:
        self._check_pending(ImportStatus.REFUSED)
        self._refused(code=code, detail=detail, actor=actor, correlation_id=correlation_id)

    def _check_pending(self, to: ImportStatus) -> None:
        if self._status != ImportStatus.PENDING.value:
            raise IllegalTransition("import", self._status, to.value)

    @event(ImportCompleted)
    def _completed(
        self,
        *,
        created: list[ImportedIconData],
        rejected: list[ImportRejectionData],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._created = list(created)
        self._rejected = list(rejected)
        self._status = ImportStatus.DONE.value

    @event(ImportRefused)
    def _refused(self, *, code: str, detail: str, actor: str, correlation_id: str) -> None:
        self._refusal = {"code": code, "detail": detail}
        self._status = ImportStatus.REFUSED.value

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
    def request_key(self) -> str:
        return self._request_key

    @property
    def requested_by(self) -> str:
        """The actor who asked for the import (the import's commands run as them)."""
        return self._requested_by

    @property
    def correlation_id(self) -> str:
        return self._correlation_id

    @property
    def zip_key(self) -> str:
        """The staged zip's key in the private bucket ("" for a legacy import)."""
        return self._zip_key

    @property
    def size_bytes(self) -> int:
        return self._size_bytes

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self._roles)

    @property
    def status(self) -> ImportStatus:
        return ImportStatus(self._status)

    @property
    def refusal(self) -> dict[str, str] | None:
        """The whole-zip refusal (``code``, ``detail``) of a refused import."""
        return None if self._refusal is None else dict(self._refusal)

    @property
    def created(self) -> tuple[ImportedIconData, ...]:
        return tuple(self._created)

    @property
    def rejected(self) -> tuple[ImportRejectionData, ...]:
        return tuple(self._rejected)
