"""The IconSet aggregate: icons of one family drawn in one style, optionally sold as a bundle."""

from enum import StrEnum
from typing import Self
from uuid import UUID

from eventsourcing.domain import event

from domain.choices import parse_choice
from domain.money import Money, MoneyData
from domain.preview import Previewed, PreviewState
from domain.publication import PublicationStatus, check_publication_transition
from domain.text import clean_name
from domain.traced_aggregate import TracedAggregate


class IconStyle(StrEnum):
    LINE = "line"
    SOLID = "solid"
    FLAT = "flat"
    DUOTONE = "duotone"
    OUTLINE = "outline"
    GLYPH = "glyph"


class IconSet(Previewed, TracedAggregate):
    class Created(TracedAggregate.Created):
        family_id: UUID
        owner_id: str
        name: str
        style: str
        bundle_price: MoneyData | None

    class Renamed(TracedAggregate.Event):
        name: str

    class StyleChanged(TracedAggregate.Event):
        style: str

    class BundlePriceChanged(TracedAggregate.Event):
        bundle_price: MoneyData | None

    class Published(TracedAggregate.Event):
        pass

    class Unpublished(TracedAggregate.Event):
        pass

    class PreviewRecorded(TracedAggregate.Event):
        """A composed grid preview (public bucket ``key``) of ``icon_ids``, whose keys hash to
        ``member_hash``."""

        key: str
        member_hash: str
        icon_ids: list[UUID]

    class IconAdded(TracedAggregate.Event):
        """Icon ``icon_id`` was created in this set (an icon never moves to another set)."""

        icon_id: UUID

    @classmethod
    def create(
        cls,
        *,
        family_id: UUID,
        owner_id: str,
        name: str,
        style: IconStyle,
        bundle_price: Money | None = None,
        actor: str,
        correlation_id: str,
    ) -> Self:
        return cls(
            family_id=family_id,
            owner_id=owner_id,
            name=clean_name(name),
            style=parse_choice(IconStyle, style).value,
            bundle_price=_money_data(bundle_price),
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Created)
    def __init__(
        self,
        *,
        family_id: UUID,
        owner_id: str,
        name: str,
        style: str,
        bundle_price: MoneyData | None,
        actor: str,
        correlation_id: str,
    ) -> None:
        self._family_id = family_id
        self._owner_id = owner_id
        self._name = name
        self._style = style
        self._bundle_price = bundle_price
        self._status = PublicationStatus.DRAFT.value
        self._preview: PreviewState | None = None
        self._member_icon_ids: list[UUID] = []

    @property
    def family_id(self) -> UUID:
        return self._family_id

    @property
    def owner_id(self) -> str:
        return self._owner_id

    @property
    def name(self) -> str:
        return self._name

    @property
    def style(self) -> IconStyle:
        return IconStyle(self._style)

    @property
    def bundle_price(self) -> Money | None:
        return None if self._bundle_price is None else Money.from_data(self._bundle_price)

    @property
    def status(self) -> PublicationStatus:
        return PublicationStatus(self._status)

    @property
    def member_icon_ids(self) -> tuple[UUID, ...]:
        """Every icon created in the set, in creation order, whatever its status."""
        return tuple(self._member_icon_ids)

    def add_icon(self, *, icon_id: UUID, actor: str, correlation_id: str) -> None:
        """Records a new icon of the set; a member added again records nothing."""
        if icon_id in self._member_icon_ids:
            return
        self._icon_added(icon_id=icon_id, actor=actor, correlation_id=correlation_id)

    def rename(self, *, name: str, actor: str, correlation_id: str) -> None:
        self._renamed(name=clean_name(name), actor=actor, correlation_id=correlation_id)

    def change_style(self, *, style: IconStyle, actor: str, correlation_id: str) -> None:
        self._style_changed(
            style=parse_choice(IconStyle, style).value, actor=actor, correlation_id=correlation_id
        )

    def change_bundle_price(
        self, *, bundle_price: Money | None, actor: str, correlation_id: str
    ) -> None:
        """Sets the bundle price; ``None`` stops selling the set as a bundle."""
        self._bundle_price_changed(
            bundle_price=_money_data(bundle_price), actor=actor, correlation_id=correlation_id
        )

    def publish(self, *, actor: str, correlation_id: str) -> None:
        self._check_transition(PublicationStatus.PUBLISHED)
        self._published(actor=actor, correlation_id=correlation_id)

    def unpublish(self, *, actor: str, correlation_id: str) -> None:
        self._check_transition(PublicationStatus.UNPUBLISHED)
        self._unpublished(actor=actor, correlation_id=correlation_id)

    def _check_transition(self, target: PublicationStatus) -> None:
        check_publication_transition("IconSet", self.status, target)

    @event(Renamed)
    def _renamed(self, *, name: str, actor: str, correlation_id: str) -> None:
        self._name = name

    @event(StyleChanged)
    def _style_changed(self, *, style: str, actor: str, correlation_id: str) -> None:
        self._style = style

    @event(BundlePriceChanged)
    def _bundle_price_changed(
        self, *, bundle_price: MoneyData | None, actor: str, correlation_id: str
    ) -> None:
        self._bundle_price = bundle_price

    @event(Published)
    def _published(self, *, actor: str, correlation_id: str) -> None:
        self._status = PublicationStatus.PUBLISHED.value

    @event(Unpublished)
    def _unpublished(self, *, actor: str, correlation_id: str) -> None:
        self._status = PublicationStatus.UNPUBLISHED.value

    @event(IconAdded)
    def _icon_added(self, *, icon_id: UUID, actor: str, correlation_id: str) -> None:
        self._member_icon_ids.append(icon_id)

    @event(PreviewRecorded)
    def _preview_recorded(
        self, *, key: str, member_hash: str, icon_ids: list[UUID], actor: str, correlation_id: str
    ) -> None:
        self._preview = {"key": key, "member_hash": member_hash, "icon_ids": list(icon_ids)}


def _money_data(money: Money | None) -> MoneyData | None:
    return None if money is None else money.to_data()
