"""The popularity projector: which library events count, and what each write carries."""

from __future__ import annotations

from typing import Any

from projections.popularity import PopularityWrite, apply
from stream.envelope import Envelope, event_id_for

LIBRARY = "5d0c2f5e-0000-4000-8000-000000000001"
ORDER = "5d0c2f5e-0000-4000-8000-0000000000aa"
ICON_A = "5d0c2f5e-0000-4000-8000-00000000000a"
ICON_B = "5d0c2f5e-0000-4000-8000-00000000000b"


def _event(event_type: str, version: int, data: dict[str, Any]) -> Envelope:
    return Envelope(
        event_id=event_id_for(LIBRARY, version),
        type=event_type,
        schema_version=1,
        context="commerce",
        aggregate_type=event_type.split(".", 1)[0],
        aggregate_id=LIBRARY,
        aggregate_version=version,
        position=40 + version,
        occurred_at="2026-01-01T00:00:00Z",
        actor="customer-1",
        correlation_id="corr-1",
        causation_id=None,
        data=data,
    )


def test_a_grant_counts_each_icon_once() -> None:
    icons = [
        {"icon_id": ICON_B, "icon_version": 2},
        {"icon_id": ICON_A, "icon_version": 1},
        {"icon_id": ICON_B, "icon_version": 2},
    ]
    event = _event("Library.EntitlementsGranted", 2, {"order_id": ORDER, "icons": icons})
    assert apply(event) == [PopularityWrite(LIBRARY, 2, "grant", ORDER, (ICON_A, ICON_B))]


def test_a_revoke_names_the_order_only() -> None:
    event = _event("Library.EntitlementsRevoked", 3, {"order_id": ORDER, "reason": "refund"})
    assert apply(event) == [PopularityWrite(LIBRARY, 3, "revoke", ORDER, ())]


def test_a_download_counts_its_icon() -> None:
    data = {"icon_id": ICON_A, "format": "png", "size": 128, "size_bytes": 1200}
    event = _event("Library.DownloadRecorded", 4, data)
    assert apply(event) == [PopularityWrite(LIBRARY, 4, "download", "", (ICON_A,))]


def test_other_events_count_nothing() -> None:
    assert apply(_event("Library.FavouriteAdded", 5, {"icon_id": ICON_A})) == []
    assert apply(_event("Library.Opened", 1, {"customer_id": "customer-1"})) == []
