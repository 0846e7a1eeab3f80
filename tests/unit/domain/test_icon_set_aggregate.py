from collections.abc import Callable
from uuid import UUID

import pytest

from domain.errors import DomainError, IllegalTransition, InvalidValue
from domain.icon_set import IconSet, IconStyle
from domain.money import Money
from domain.publication import PublicationStatus
from domain.traced_aggregate import Trace, TracedAggregate

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]

FAMILY_ID = UUID("00000000-0000-4000-8000-00000000000f")


def _icon_set(trace: Trace, bundle_price: Money | None = None) -> IconSet:
    return IconSet.create(
        family_id=FAMILY_ID,
        owner_id="contributor-1",
        name="Weather line",
        style=IconStyle.LINE,
        bundle_price=bundle_price,
        **trace,
    )


def test_creating_a_set_records_created_as_a_draft(trace: Trace, collect: Collect) -> None:
    icon_set = _icon_set(trace, Money(4900, "EUR"))

    assert collect(icon_set) == ["IconSet.Created"]
    assert (icon_set.family_id, icon_set.owner_id, icon_set.name) == (
        FAMILY_ID,
        "contributor-1",
        "Weather line",
    )
    assert icon_set.style is IconStyle.LINE
    assert icon_set.bundle_price == Money(4900, "EUR")
    assert (icon_set.status, icon_set.version) == (PublicationStatus.DRAFT, 1)


def test_a_set_without_bundle_price_is_not_sold_as_a_bundle(trace: Trace) -> None:
    assert _icon_set(trace).bundle_price is None


def test_the_styles_are_the_six_known_ones() -> None:
    assert [style.value for style in IconStyle] == [
        "line",
        "solid",
        "flat",
        "duotone",
        "outline",
        "glyph",
    ]


def test_an_unknown_style_is_rejected(trace: Trace) -> None:
    with pytest.raises(InvalidValue) as raised:
        IconSet.create(
            family_id=FAMILY_ID,
            owner_id="contributor-1",
            name="Weather",
            style="sketchy",  # type: ignore[arg-type]
            **trace,
        )

    assert raised.value.code == "invalid_choice"


def test_rename_restyle_and_reprice(trace: Trace, collect: Collect) -> None:
    icon_set = _icon_set(trace)
    collect(icon_set)

    icon_set.rename(name=" Weather  duotone ", **trace)
    icon_set.change_style(style=IconStyle.DUOTONE, **trace)
    icon_set.change_bundle_price(bundle_price=Money(2500, "USD"), **trace)

    assert collect(icon_set) == [
        "IconSet.Renamed",
        "IconSet.StyleChanged",
        "IconSet.BundlePriceChanged",
    ]
    assert (icon_set.name, icon_set.style, icon_set.bundle_price) == (
        "Weather duotone",
        IconStyle.DUOTONE,
        Money(2500, "USD"),
    )
    assert icon_set.version == 4


def test_removing_the_bundle_price(trace: Trace, collect: Collect) -> None:
    icon_set = _icon_set(trace, Money(100, "EUR"))
    collect(icon_set)

    icon_set.change_bundle_price(bundle_price=None, **trace)

    assert collect(icon_set) == ["IconSet.BundlePriceChanged"]
    assert icon_set.bundle_price is None


def test_publish_and_unpublish(trace: Trace, collect: Collect) -> None:
    icon_set = _icon_set(trace)
    collect(icon_set)

    icon_set.publish(**trace)
    icon_set.unpublish(**trace)

    assert collect(icon_set) == ["IconSet.Published", "IconSet.Unpublished"]
    assert (icon_set.status, icon_set.version) == (PublicationStatus.UNPUBLISHED, 3)


def test_illegal_publication_moves_are_rejected(trace: Trace, rejects: Rejects) -> None:
    icon_set = _icon_set(trace)
    rejects(icon_set, IllegalTransition, "illegal_transition", lambda: icon_set.unpublish(**trace))

    icon_set.publish(**trace)
    rejects(icon_set, IllegalTransition, "illegal_transition", lambda: icon_set.publish(**trace))


ICON_A = UUID("00000000-0000-4000-8000-00000000000a")
ICON_B = UUID("00000000-0000-4000-8000-00000000000b")


def test_a_set_records_its_icons_once_each_in_creation_order(
    trace: Trace, collect: Collect
) -> None:
    icon_set = _icon_set(trace)
    collect(icon_set)
    assert _icon_set(trace).member_icon_ids == ()

    icon_set.add_icon(icon_id=ICON_B, **trace)
    icon_set.add_icon(icon_id=ICON_A, **trace)
    icon_set.add_icon(icon_id=ICON_B, **trace)

    assert collect(icon_set) == ["IconSet.IconAdded", "IconSet.IconAdded"]
    assert icon_set.member_icon_ids == (ICON_B, ICON_A)
    assert icon_set.version == 3


def test_membership_is_rebuilt_from_the_events(trace: Trace) -> None:
    icon_set = _icon_set(trace)
    icon_set.add_icon(icon_id=ICON_A, **trace)
    icon_set.publish(**trace)
    icon_set.add_icon(icon_id=ICON_B, **trace)

    rebuilt: object = None
    for recorded in icon_set.collect_events():
        rebuilt = recorded.mutate(rebuilt)  # type: ignore[arg-type]

    assert isinstance(rebuilt, IconSet)
    assert rebuilt.member_icon_ids == (ICON_A, ICON_B)
    assert (rebuilt.status, rebuilt.version) == (PublicationStatus.PUBLISHED, 4)
