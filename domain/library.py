"""The Library aggregate: one per customer, holding entitlements, downloads and favourites."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self, TypedDict
from uuid import UUID

from eventsourcing.domain import event

from domain.choices import parse_choice
from domain.errors import ErrorCode, Forbidden, InvalidValue, InvariantViolated, NotFound
from domain.ids import library_id_for
from domain.media import MediaFormat
from domain.traced_aggregate import TracedAggregate


class GrantedIconData(TypedDict):
    """One icon granted by an order, as stored in events and aggregate state."""

    icon_id: UUID
    icon_version: int


class GrantData(TypedDict):
    """The icons one order granted, as stored in aggregate state."""

    order_id: UUID
    icons: list[GrantedIconData]
    revoked: bool


@dataclass(frozen=True, slots=True)
class Entitlement:
    icon_id: UUID
    icon_version: int
    order_id: UUID


class Library(TracedAggregate):
    """A customer's purchases. Its id derives from the customer id: one library per customer."""

    class Opened(TracedAggregate.Created):
        customer_id: str

    class EntitlementsGranted(TracedAggregate.Event):
        order_id: UUID
        icons: list[GrantedIconData]

    class EntitlementsRevoked(TracedAggregate.Event):
        order_id: UUID
        reason: str

    class DownloadRecorded(TracedAggregate.Event):
        icon_id: UUID
        format: str
        size: int | None
        size_bytes: int

    class FavouriteAdded(TracedAggregate.Event):
        icon_id: UUID

    class FavouriteRemoved(TracedAggregate.Event):
        icon_id: UUID

    @staticmethod
    def create_id(customer_id: str) -> UUID:
        return library_id_for(customer_id)

    @classmethod
    def open(cls, *, customer_id: str, actor: str, correlation_id: str) -> Self:
        return cls(customer_id=customer_id, actor=actor, correlation_id=correlation_id)

    @event(Opened)
    def __init__(self, *, customer_id: str, actor: str, correlation_id: str) -> None:
        self._customer_id = customer_id
        self._grants: list[GrantData] = []
        self._favourites: list[UUID] = []
        self._download_count = 0

    @property
    def customer_id(self) -> str:
        return self._customer_id

    @property
    def entitlements(self) -> tuple[Entitlement, ...]:
        """Entitlements still in force (not revoked by a refund)."""
        return tuple(
            Entitlement(icon["icon_id"], icon["icon_version"], grant["order_id"])
            for grant in self._grants
            if not grant["revoked"]
            for icon in grant["icons"]
        )

    @property
    def favourites(self) -> tuple[UUID, ...]:
        return tuple(self._favourites)

    @property
    def download_count(self) -> int:
        return self._download_count

    def is_entitled(self, icon_id: UUID) -> bool:
        return any(entitlement.icon_id == icon_id for entitlement in self.entitlements)

    def has_active_grant(self, order_id: UUID) -> bool:
        """True when ``order_id`` granted icons here that are not revoked."""
        return any(g["order_id"] == order_id and not g["revoked"] for g in self._grants)

    def entitled_version(self, icon_id: UUID) -> int | None:
        """The newest icon version bought, or ``None`` without an entitlement."""
        versions = [e.icon_version for e in self.entitlements if e.icon_id == icon_id]
        return max(versions, default=None)

    def grant(
        self, *, order_id: UUID, icons: Mapping[UUID, int], actor: str, correlation_id: str
    ) -> None:
        """Grants the icons of a paid order, mapping each icon id to the version bought."""
        self._check_not_granted(order_id)
        self._check_icons(icons)
        self._entitlements_granted(
            order_id=order_id,
            icons=[
                {"icon_id": icon_id, "icon_version": version} for icon_id, version in icons.items()
            ],
            actor=actor,
            correlation_id=correlation_id,
        )

    def revoke(self, *, order_id: UUID, reason: str, actor: str, correlation_id: str) -> None:
        """Withdraws what a refunded order granted."""
        grant = self._grant_for(order_id)
        self._check_not_revoked(grant)
        self._entitlements_revoked(
            order_id=order_id, reason=reason, actor=actor, correlation_id=correlation_id
        )

    def record_download(
        self,
        *,
        icon_id: UUID,
        format: MediaFormat,
        size: int | None,
        size_bytes: int,
        free: bool = False,
        actor: str,
        correlation_id: str,
    ) -> None:
        """Records one download; ``size`` is the edge in pixels, ``None`` for vector formats.

        ``free``: the icon is free to download (the caller checked it), so no entitlement is
        needed.
        """
        if not free:
            self._check_entitled(icon_id)
        _check_download(size, size_bytes)
        self._download_recorded(
            icon_id=icon_id,
            format=parse_choice(MediaFormat, format).value,
            size=size,
            size_bytes=size_bytes,
            actor=actor,
            correlation_id=correlation_id,
        )

    def add_favourite(self, *, icon_id: UUID, actor: str, correlation_id: str) -> None:
        """Adds a favourite; an existing favourite records nothing."""
        if icon_id not in self._favourites:
            self._favourite_added(icon_id=icon_id, actor=actor, correlation_id=correlation_id)

    def remove_favourite(self, *, icon_id: UUID, actor: str, correlation_id: str) -> None:
        """Removes a favourite; removing a non-favourite records nothing."""
        if icon_id in self._favourites:
            self._favourite_removed(icon_id=icon_id, actor=actor, correlation_id=correlation_id)

    def _grant_for(self, order_id: UUID) -> GrantData:
        for grant in self._grants:
            if grant["order_id"] == order_id:
                return grant
        raise NotFound(
            ErrorCode.NO_ENTITLEMENTS_FOR_ORDER, f"order {order_id} granted nothing here"
        )

    def _check_not_granted(self, order_id: UUID) -> None:
        if any(grant["order_id"] == order_id for grant in self._grants):
            raise InvariantViolated(
                ErrorCode.ALREADY_GRANTED, f"order {order_id} was already granted"
            )

    def _check_icons(self, icons: Mapping[UUID, int]) -> None:
        if not icons:
            raise InvariantViolated(ErrorCode.ENTITLEMENTS_EMPTY, "no icons to grant")
        for icon_id, version in icons.items():
            if type(version) is not int or version < 1:
                raise InvalidValue(
                    ErrorCode.INVALID_ICON_VERSION, f"icon {icon_id} has version {version!r}"
                )

    def _check_not_revoked(self, grant: GrantData) -> None:
        if grant["revoked"]:
            raise InvariantViolated(
                ErrorCode.ALREADY_REVOKED, f"order {grant['order_id']} was already revoked"
            )

    def _check_entitled(self, icon_id: UUID) -> None:
        if not self.is_entitled(icon_id):
            raise Forbidden(ErrorCode.NOT_ENTITLED, f"no entitlement to icon {icon_id}")

    @event(EntitlementsGranted)
    def _entitlements_granted(
        self,
        *,
        order_id: UUID,
        icons: list[GrantedIconData],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._grants.append({"order_id": order_id, "icons": list(icons), "revoked": False})

    @event(EntitlementsRevoked)
    def _entitlements_revoked(
        self, *, order_id: UUID, reason: str, actor: str, correlation_id: str
    ) -> None:
        self._grants = [
            {**grant, "revoked": True} if grant["order_id"] == order_id else grant
            for grant in self._grants
        ]

    @event(DownloadRecorded)
    def _download_recorded(
        self,
        *,
        icon_id: UUID,
        format: str,
        size: int | None,
        size_bytes: int,
        actor: str,
        correlation_id: str,
    ) -> None:
        self._download_count += 1

    @event(FavouriteAdded)
    def _favourite_added(self, *, icon_id: UUID, actor: str, correlation_id: str) -> None:
        self._favourites.append(icon_id)

    @event(FavouriteRemoved)
    def _favourite_removed(self, *, icon_id: UUID, actor: str, correlation_id: str) -> None:
        self._favourites.remove(icon_id)


def _check_download(size: int | None, size_bytes: int) -> None:
    size_ok = size is None or (type(size) is int and size > 0)
    if not size_ok or type(size_bytes) is not int or size_bytes <= 0:
        raise InvalidValue(
            ErrorCode.INVALID_DOWNLOAD, "a download needs a positive size and byte count"
        )
