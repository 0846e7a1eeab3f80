from collections.abc import Callable
from uuid import UUID

import pytest

from domain.errors import DomainError, Forbidden, InvalidValue, InvariantViolated, NotFound
from domain.ids import library_id_for
from domain.library import Entitlement, Library
from domain.media import MediaFormat
from domain.traced_aggregate import Trace, TracedAggregate

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]

SUN = UUID("00000000-0000-4000-8000-000000000001")
MOON = UUID("00000000-0000-4000-8000-000000000002")
FIRST_ORDER = UUID("00000000-0000-4000-8000-0000000000a1")
SECOND_ORDER = UUID("00000000-0000-4000-8000-0000000000a2")


def _library(trace: Trace) -> Library:
    return Library.open(customer_id="customer-1", **trace)


def _library_owning_sun(trace: Trace) -> Library:
    library = _library(trace)
    library.grant(order_id=FIRST_ORDER, icons={SUN: 1}, **trace)
    return library


def test_opening_a_library_uses_the_customer_derived_id(trace: Trace, collect: Collect) -> None:
    library = _library(trace)

    assert collect(library) == ["Library.Opened"]
    assert library.id == library_id_for("customer-1")
    assert (library.customer_id, library.entitlements, library.favourites) == (
        "customer-1",
        (),
        (),
    )
    assert (library.download_count, library.version) == (0, 1)


def test_granting_an_order_entitles_each_icon_version(trace: Trace, collect: Collect) -> None:
    library = _library(trace)
    collect(library)

    library.grant(order_id=FIRST_ORDER, icons={SUN: 2, MOON: 1}, **trace)

    assert collect(library) == ["Library.EntitlementsGranted"]
    assert library.entitlements == (
        Entitlement(SUN, 2, FIRST_ORDER),
        Entitlement(MOON, 1, FIRST_ORDER),
    )
    assert (library.is_entitled(SUN), library.is_entitled(MOON)) == (True, True)
    assert library.version == 2


def test_granted_carries_the_icons_as_plain_data(trace: Trace) -> None:
    library = _library(trace)
    library.collect_events()

    library.grant(order_id=FIRST_ORDER, icons={SUN: 2}, **trace)

    (granted,) = library.collect_events()
    assert isinstance(granted, Library.EntitlementsGranted)
    assert (granted.order_id, granted.icons) == (FIRST_ORDER, [{"icon_id": SUN, "icon_version": 2}])


def test_the_newest_bought_version_is_the_entitled_one(trace: Trace) -> None:
    library = _library_owning_sun(trace)
    library.grant(order_id=SECOND_ORDER, icons={SUN: 3}, **trace)

    assert (library.entitled_version(SUN), library.entitled_version(MOON)) == (3, None)


def test_an_order_is_granted_once(trace: Trace, rejects: Rejects) -> None:
    library = _library_owning_sun(trace)

    rejects(
        library,
        InvariantViolated,
        "already_granted",
        lambda: library.grant(order_id=FIRST_ORDER, icons={MOON: 1}, **trace),
    )


def test_a_grant_needs_icons(trace: Trace, rejects: Rejects) -> None:
    library = _library(trace)

    rejects(
        library,
        InvariantViolated,
        "entitlements_empty",
        lambda: library.grant(order_id=FIRST_ORDER, icons={}, **trace),
    )


def test_a_grant_needs_positive_icon_versions(trace: Trace, rejects: Rejects) -> None:
    library = _library(trace)

    rejects(
        library,
        InvalidValue,
        "invalid_icon_version",
        lambda: library.grant(order_id=FIRST_ORDER, icons={SUN: 0}, **trace),
    )


def test_revoking_a_refunded_order_removes_its_entitlements(trace: Trace, collect: Collect) -> None:
    library = _library_owning_sun(trace)
    library.grant(order_id=SECOND_ORDER, icons={MOON: 1}, **trace)
    collect(library)

    library.revoke(order_id=FIRST_ORDER, reason="refunded", **trace)

    assert collect(library) == ["Library.EntitlementsRevoked"]
    assert library.entitlements == (Entitlement(MOON, 1, SECOND_ORDER),)
    assert (library.is_entitled(SUN), library.is_entitled(MOON)) == (False, True)
    assert library.version == 4


def test_an_icon_bought_twice_stays_entitled_after_one_refund(trace: Trace) -> None:
    library = _library_owning_sun(trace)
    library.grant(order_id=SECOND_ORDER, icons={SUN: 2}, **trace)

    library.revoke(order_id=SECOND_ORDER, reason="refunded", **trace)

    assert (library.is_entitled(SUN), library.entitled_version(SUN)) == (True, 1)


def test_revoking_an_unknown_order_is_not_found(trace: Trace, rejects: Rejects) -> None:
    library = _library_owning_sun(trace)

    rejects(
        library,
        NotFound,
        "no_entitlements_for_order",
        lambda: library.revoke(order_id=SECOND_ORDER, reason="refunded", **trace),
    )


def test_an_order_is_revoked_once(trace: Trace, rejects: Rejects) -> None:
    library = _library_owning_sun(trace)
    library.revoke(order_id=FIRST_ORDER, reason="refunded", **trace)

    rejects(
        library,
        InvariantViolated,
        "already_revoked",
        lambda: library.revoke(order_id=FIRST_ORDER, reason="refunded", **trace),
    )


def test_an_entitled_download_is_recorded(trace: Trace, collect: Collect) -> None:
    library = _library_owning_sun(trace)
    collect(library)

    library.record_download(icon_id=SUN, format=MediaFormat.PNG, size=256, size_bytes=4096, **trace)
    library.record_download(icon_id=SUN, format=MediaFormat.SVG, size=None, size_bytes=900, **trace)

    events = library.collect_events()
    assert [type(recorded).__qualname__ for recorded in events] == [
        "Library.DownloadRecorded",
        "Library.DownloadRecorded",
    ]
    first = events[0]
    assert isinstance(first, Library.DownloadRecorded)
    assert (first.icon_id, first.format, first.size, first.size_bytes) == (SUN, "png", 256, 4096)
    assert (library.download_count, library.version) == (2, 4)


def test_downloading_without_entitlement_is_forbidden(trace: Trace, rejects: Rejects) -> None:
    library = _library_owning_sun(trace)

    rejects(
        library,
        Forbidden,
        "not_entitled",
        lambda: library.record_download(
            icon_id=MOON, format=MediaFormat.PNG, size=64, size_bytes=10, **trace
        ),
    )


def test_downloading_after_a_refund_is_forbidden(trace: Trace, rejects: Rejects) -> None:
    library = _library_owning_sun(trace)
    library.revoke(order_id=FIRST_ORDER, reason="refunded", **trace)

    rejects(
        library,
        Forbidden,
        "not_entitled",
        lambda: library.record_download(
            icon_id=SUN, format=MediaFormat.PNG, size=64, size_bytes=10, **trace
        ),
    )


@pytest.mark.parametrize(("size", "size_bytes"), [(0, 10), (64, 0), (-1, 10)])
def test_a_download_needs_positive_sizes(
    trace: Trace, rejects: Rejects, size: int, size_bytes: int
) -> None:
    library = _library_owning_sun(trace)

    rejects(
        library,
        InvalidValue,
        "invalid_download",
        lambda: library.record_download(
            icon_id=SUN, format=MediaFormat.PNG, size=size, size_bytes=size_bytes, **trace
        ),
    )


def test_favourites_are_added_and_removed_without_duplicates(
    trace: Trace, collect: Collect
) -> None:
    library = _library(trace)
    collect(library)

    library.add_favourite(icon_id=SUN, **trace)
    library.add_favourite(icon_id=MOON, **trace)
    library.add_favourite(icon_id=SUN, **trace)
    library.remove_favourite(icon_id=SUN, **trace)
    library.remove_favourite(icon_id=SUN, **trace)

    assert collect(library) == [
        "Library.FavouriteAdded",
        "Library.FavouriteAdded",
        "Library.FavouriteRemoved",
    ]
    assert (library.favourites, library.version) == ((MOON,), 4)
