"""The catalog projector is pure: envelopes in, exact source-versioned patches out."""

from __future__ import annotations

from typing import Any

import pytest

from projections.catalog import CatalogWrite, apply
from projections.catalog_view import merge_patches, shared_patch
from stream.envelope import Envelope, event_id_for

ICON = "11111111-1111-4111-8111-111111111111"
SET = "22222222-2222-4222-8222-222222222222"
FAMILY = "33333333-3333-4333-8333-333333333333"
AT = "2026-01-02T03:04:05Z"


def envelope(event_type: str, aggregate_id: str, version: int, data: dict[str, Any]) -> Envelope:
    return Envelope(
        event_id=event_id_for(aggregate_id, version),
        type=event_type,
        schema_version=1,
        context="catalog",
        aggregate_type=event_type.split(".", 1)[0],
        aggregate_id=aggregate_id,
        aggregate_version=version,
        position=100 + version,
        occurred_at=AT,
        actor="contributor-1",
        correlation_id="corr-1",
        causation_id=None,
        data=data,
    )


def icon_write(version: int, fields: dict[str, Any]) -> CatalogWrite:
    return CatalogWrite(f"icon:{ICON}", "icon", ICON, version, 100 + version, fields)


def test_icon_created_becomes_the_full_icon_patch() -> None:
    data = {
        "set_id": SET,
        "family_id": FAMILY,
        "owner_id": "contributor-1",
        "name": "calendar",
        "tags": ["date"],
        "categories": ["time"],
        "price": {"amount_minor": 0, "currency": "USD"},
        "licence": "standard",
    }
    assert apply(envelope("Icon.Created", ICON, 1, data)) == [
        icon_write(
            1,
            {
                "kind": "icon",
                "id": ICON,
                "set_id": SET,
                "family_id": FAMILY,
                "owner_id": "contributor-1",
                "name": "calendar",
                "tags": ["date"],
                "categories": ["time"],
                "price_minor": 0,
                "currency": "USD",
                "is_free": True,
                "licence": "standard",
                "formats": [],
                "status": "draft",
                "created_at": AT,
            },
        )
    ]


ORIGINAL = {
    "key": "o/h.svg",
    "content_hash": "h",
    "size_bytes": 1,
    "width": 24,
    "height": 24,
    "render_cost": 30_000,
}
PENDING = {"formats": ["svg"], "render_state": "pending", "render_refusal": None}
REFUSAL = {
    "source_hash": "h",
    "renderer_version": "r2",
    "code": "render_timeout",
    "detail": "the png-64 pass used more than 5 s of CPU time",
}
ITEMS = [
    {"kind": "webp", "size": 64, "key": "d/a.webp", "size_bytes": 9},
    {"kind": "png", "size": 64, "key": "d/a.png", "size_bytes": 9},
    {"kind": "png", "size": 128, "key": "d/b.png", "size_bytes": 9},
]


@pytest.mark.parametrize(
    ("event_type", "data", "fields"),
    [
        (
            "Icon.DetailsUpdated",
            {"name": "date", "tags": ["day"], "categories": ["time"]},
            {"name": "date", "tags": ["day"], "categories": ["time"]},
        ),
        (
            "Icon.PriceChanged",
            {"price": {"amount_minor": 250, "currency": "EUR"}},
            {"price_minor": 250, "currency": "EUR", "is_free": False},
        ),
        ("Icon.LicenceChanged", {"licence": "extended"}, {"licence": "extended"}),
        ("Icon.OriginalRecorded", {"original": ORIGINAL}, PENDING),
        ("Icon.SvgRevised", {"original": ORIGINAL, "svg_revision": 2}, PENDING),
        (
            "Icon.DerivativesRecorded",
            {"source_hash": "h", "renderer_version": "r1", "items": ITEMS},
            {"formats": ["png", "svg", "webp"], "render_state": "rendered", "render_refusal": None},
        ),
        (
            "Icon.RenderRefused",
            {"refusal": REFUSAL},
            {"render_state": "refused", "render_refusal": REFUSAL},
        ),
        ("Icon.Published", {}, {"status": "published"}),
        ("Icon.Unpublished", {}, {"status": "unpublished"}),
        ("Icon.Retired", {}, {"status": "retired"}),
    ],
)
def test_icon_changes_become_partial_patches(
    event_type: str, data: dict[str, Any], fields: dict[str, Any]
) -> None:
    assert apply(envelope(event_type, ICON, 4, data)) == [icon_write(4, fields)]


def test_set_events_patch_the_set_document() -> None:
    created = {
        "family_id": FAMILY,
        "owner_id": "contributor-1",
        "name": "Essentials Line",
        "style": "line",
        "bundle_price": {"amount_minor": 900, "currency": "USD"},
    }
    events = [
        envelope("IconSet.Created", SET, 1, created),
        envelope("IconSet.Renamed", SET, 2, {"name": "Basics"}),
        envelope("IconSet.StyleChanged", SET, 3, {"style": "solid"}),
        envelope("IconSet.BundlePriceChanged", SET, 4, {"bundle_price": None}),
        envelope("IconSet.Published", SET, 5, {}),
        envelope("IconSet.Unpublished", SET, 6, {}),
    ]
    writes = [w for e in events for w in apply(e)]
    doc_id = f"set:{SET}"
    assert writes == [
        CatalogWrite(
            doc_id,
            "set",
            SET,
            1,
            101,
            {
                "kind": "set",
                "id": SET,
                "set_id": SET,
                "family_id": FAMILY,
                "owner_id": "contributor-1",
                "set_name": "Essentials Line",
                "style": "line",
                "bundle_price_minor": 900,
                "bundle_currency": "USD",
                "set_status": "draft",
                "created_at": AT,
            },
        ),
        CatalogWrite(doc_id, "set", SET, 2, 102, {"set_name": "Basics"}),
        CatalogWrite(doc_id, "set", SET, 3, 103, {"style": "solid"}),
        CatalogWrite(
            doc_id, "set", SET, 4, 104, {"bundle_price_minor": None, "bundle_currency": None}
        ),
        CatalogWrite(doc_id, "set", SET, 5, 105, {"set_status": "published"}),
        CatalogWrite(doc_id, "set", SET, 6, 106, {"set_status": "unpublished"}),
    ]


def test_family_events_patch_the_family_document() -> None:
    details = {"name": "Essentials", "description": "Basics", "categories": ["ui"], "tags": ["a"]}
    events = [
        envelope("Family.Created", FAMILY, 1, {"owner_id": "contributor-1", **details}),
        envelope("Family.DetailsUpdated", FAMILY, 2, {**details, "name": "Core"}),
        envelope("Family.Published", FAMILY, 3, {}),
    ]
    writes = [w for e in events for w in apply(e)]
    doc_id = f"family:{FAMILY}"
    same = {"description": "Basics", "categories": ["ui"], "tags": ["a"]}
    assert writes == [
        CatalogWrite(
            doc_id,
            "family",
            FAMILY,
            1,
            101,
            {
                "kind": "family",
                "id": FAMILY,
                "family_id": FAMILY,
                "owner_id": "contributor-1",
                "family_name": "Essentials",
                **same,
                "family_status": "draft",
                "created_at": AT,
            },
        ),
        CatalogWrite(doc_id, "family", FAMILY, 2, 102, {"family_name": "Core", **same}),
        CatalogWrite(doc_id, "family", FAMILY, 3, 103, {"family_status": "published"}),
    ]


def test_other_events_write_nothing() -> None:
    assert apply(envelope("Cart.Opened", ICON, 1, {"owner_id": "c", "currency": "USD"})) == []


def test_set_membership_and_previews_write_nothing() -> None:
    assert apply(envelope("IconSet.IconAdded", SET, 2, {"icon_id": ICON})) == []
    preview = {"key": "previews/set.png", "member_hash": "abc", "icon_ids": [ICON]}
    assert apply(envelope("IconSet.PreviewRecorded", SET, 3, preview)) == []


def test_patches_apply_only_when_newer_per_source() -> None:
    icon = {"source": "icon", "version": 2, "position": 50, "fields": {"name": "a"}}
    old_icon = {"source": "icon", "version": 1, "position": 40, "fields": {"name": "old"}}
    set_patch = {"source": "set", "version": 3, "position": 60, "fields": {"style": "line"}}
    doc, changed = merge_patches({}, [icon, old_icon, set_patch])
    assert changed
    assert doc == {
        "name": "a",
        "icon_version": 2,
        "style": "line",
        "set_version": 3,
        "position": 60,
    }
    assert merge_patches(doc, [icon, old_icon, set_patch]) == (doc, False)


def test_the_shared_patch_copies_only_denormalised_fields() -> None:
    set_doc = {"set_name": "S", "style": "line", "set_status": "draft", "set_version": 4}
    assert shared_patch("set", {**set_doc, "position": 9, "owner_id": "x"}) == {
        "source": "set",
        "version": 4,
        "position": 9,
        "fields": {"set_name": "S", "style": "line", "set_status": "draft"},
    }
    assert shared_patch("family", {}) is None
