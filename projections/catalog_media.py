"""The catalog read model's media facts of an icon, for its owner: whatever its publication
status, its formats and its render state (``none`` before any original, ``pending``,
``rendered``, or ``refused`` with the media workers' refusal, `domain.icon.Icon.RenderRefused`).
The public queries (`projections.catalog_queries`) never show them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.catalog import icon_doc_id


def render_of(source: dict[str, Any]) -> dict[str, Any]:
    """The render state of an icon document, as the API answers it."""
    refusal = source.get("render_refusal") or {}
    return {
        "state": source.get("render_state") or "none",
        "code": refusal.get("code"),
        "detail": refusal.get("detail"),
        "source_hash": refusal.get("source_hash"),
        "renderer_version": refusal.get("renderer_version"),
    }


def icon_media(client: Any, index: str, icon_id: str) -> dict[str, Any] | None:
    """The icon's owner, status, formats and render state, or None when the read model has no
    such icon."""
    found = client.mget(index=index, body={"ids": [icon_doc_id(icon_id)]})["docs"]
    if not found or not found[0].get("found"):
        return None
    source = found[0]["_source"]
    return {
        "id": source.get("id"),
        "owner_id": source.get("owner_id"),
        "set_id": source.get("set_id"),
        "status": source.get("status"),
        "formats": source.get("formats") or [],
        "render": render_of(source),
    }


def render_refusals(client: Any, index: str, icon_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The refusals of those of ``icon_ids`` whose rendering was refused, by icon id."""
    if not icon_ids:
        return {}
    body = {"ids": [icon_doc_id(icon_id) for icon_id in icon_ids]}
    refused = {}
    for doc in client.mget(index=index, body=body)["docs"]:
        source = doc.get("_source") or {}
        if doc.get("found") and source.get("render_state") == "refused":
            refused[str(source.get("id"))] = render_of(source)
    return refused
