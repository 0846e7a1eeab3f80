"""The catalog projector: pure, ``apply(envelope) -> list[CatalogWrite]``, no I/O.

Each write is a patch of one source (an icon, a set or a family) of one document, carrying
that source's aggregate version: the view applies a patch only when its version is newer than
the one the document holds for that source, so redelivery and replays change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stream.envelope import Envelope

Source = Literal["icon", "set", "family", "popularity"]

# The set and family fields copied onto each of their icons (denormalised for search).
SET_SHARED_FIELDS = ("set_name", "style", "set_status")
FAMILY_SHARED_FIELDS = ("family_name", "family_status")


@dataclass(frozen=True)
class CatalogWrite:
    """A guarded patch: ``fields`` of document ``doc_id`` as of ``source``'s ``version``."""

    doc_id: str
    source: Source
    source_id: str
    version: int
    position: int
    fields: dict[str, Any]


def icon_doc_id(icon_id: str) -> str:
    return f"icon:{icon_id}"


def set_doc_id(set_id: str) -> str:
    return f"set:{set_id}"


def family_doc_id(family_id: str) -> str:
    return f"family:{family_id}"


def _price_fields(price: dict[str, Any]) -> dict[str, Any]:
    amount = int(price["amount_minor"])
    return {"price_minor": amount, "currency": price["currency"], "is_free": amount == 0}


def _formats(items: list[dict[str, Any]]) -> list[str]:
    """Derivatives exist only for a recorded original, so ``svg`` is always available too."""
    return sorted({str(item["kind"]) for item in items} | {"svg"})


def _icon_fields(event: Envelope) -> dict[str, Any] | None:
    data = event.data
    kind = event.type.split(".", 1)[1]
    if kind == "Created":
        return {
            "kind": "icon",
            "id": event.aggregate_id,
            "set_id": str(data["set_id"]),
            "family_id": str(data["family_id"]),
            "owner_id": data["owner_id"],
            "name": data["name"],
            "tags": list(data["tags"]),
            "categories": list(data["categories"]),
            **_price_fields(data["price"]),
            "licence": data["licence"],
            "formats": [],
            "status": "draft",
            "created_at": event.occurred_at,
        }
    if kind == "DetailsUpdated":
        return {
            "name": data["name"],
            "tags": list(data["tags"]),
            "categories": list(data["categories"]),
        }
    if kind == "PriceChanged":
        return _price_fields(data["price"])
    if kind == "LicenceChanged":
        return {"licence": data["licence"]}
    media = _media_fields(kind, data)
    if media is not None:
        return media
    return _status_fields(kind, "status")


def _media_fields(kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The icon's formats and render state (``pending``, ``rendered`` or ``refused`` with the
    refusal its owner sees)."""
    if kind in ("OriginalRecorded", "SvgRevised"):
        # A revised original invalidates the derivatives until new ones are recorded.
        return {"formats": _formats([]), "render_state": "pending", "render_refusal": None}
    if kind == "DerivativesRecorded":
        formats = _formats(data["items"])
        return {"formats": formats, "render_state": "rendered", "render_refusal": None}
    if kind == "RenderRefused":
        refusal = data["refusal"]
        return {
            "render_state": "refused",
            "render_refusal": {
                "code": refusal["code"],
                "detail": refusal["detail"],
                "source_hash": refusal["source_hash"],
                "renderer_version": refusal["renderer_version"],
            },
        }
    return None


def _status_fields(kind: str, field: str) -> dict[str, Any] | None:
    status = {"Published": "published", "Unpublished": "unpublished", "Retired": "retired"}
    return {field: status[kind]} if kind in status else None


def _set_fields(event: Envelope) -> dict[str, Any] | None:
    data = event.data
    kind = event.type.split(".", 1)[1]
    if kind == "Created":
        bundle = data["bundle_price"]
        return {
            "kind": "set",
            "id": event.aggregate_id,
            "set_id": event.aggregate_id,
            "family_id": str(data["family_id"]),
            "owner_id": data["owner_id"],
            "set_name": data["name"],
            "style": data["style"],
            "bundle_price_minor": None if bundle is None else int(bundle["amount_minor"]),
            "bundle_currency": None if bundle is None else bundle["currency"],
            "set_status": "draft",
            "created_at": event.occurred_at,
        }
    if kind == "Renamed":
        return {"set_name": data["name"]}
    if kind == "StyleChanged":
        return {"style": data["style"]}
    if kind == "BundlePriceChanged":
        bundle = data["bundle_price"]
        return {
            "bundle_price_minor": None if bundle is None else int(bundle["amount_minor"]),
            "bundle_currency": None if bundle is None else bundle["currency"],
        }
    return _status_fields(kind, "set_status")


def _family_fields(event: Envelope) -> dict[str, Any] | None:
    data = event.data
    kind = event.type.split(".", 1)[1]
    details = {
        "family_name": data.get("name"),
        "description": data.get("description"),
        "categories": list(data.get("categories", [])),
        "tags": list(data.get("tags", [])),
    }
    if kind == "Created":
        return {
            "kind": "family",
            "id": event.aggregate_id,
            "family_id": event.aggregate_id,
            "owner_id": data["owner_id"],
            **details,
            "family_status": "draft",
            "created_at": event.occurred_at,
        }
    if kind == "DetailsUpdated":
        return details
    return _status_fields(kind, "family_status")


def apply(event: Envelope) -> list[CatalogWrite]:
    aggregate = event.type.split(".", 1)[0]
    source: Source
    if aggregate == "Icon":
        source, doc_id, fields = "icon", icon_doc_id(event.aggregate_id), _icon_fields(event)
    elif aggregate == "IconSet":
        source, doc_id, fields = "set", set_doc_id(event.aggregate_id), _set_fields(event)
    elif aggregate == "Family":
        source, doc_id, fields = "family", family_doc_id(event.aggregate_id), _family_fields(event)
    else:
        return []
    if fields is None:
        return []
    return [
        CatalogWrite(
            doc_id=doc_id,
            source=source,
            source_id=event.aggregate_id,
            version=event.aggregate_version,
            position=event.position,
            fields=fields,
        )
    ]
