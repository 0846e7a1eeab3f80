"""The popularity projector: pure, ``apply(envelope) -> list[PopularityWrite]``, no I/O.

An icon's popularity is its ``purchases`` (grants in force that include it: a grant counts once
per order, and a revoked grant stops counting) and its ``downloads`` (the customers who
downloaded it: a customer's repeated downloads of one icon count once). Both
come from the customers' ``Library`` events in the commerce log; the view counts them per icon,
guarded by each library's version, and copies the counts onto the icon's catalog document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stream.envelope import Envelope

Op = Literal["grant", "revoke", "download"]

POPULARITY_OPS: dict[str, Op] = {
    "Library.EntitlementsGranted": "grant",
    "Library.EntitlementsRevoked": "revoke",
    "Library.DownloadRecorded": "download",
}


@dataclass(frozen=True)
class PopularityWrite:
    """One library event's effect: ``grant`` (``order_id``, ``icon_ids``), ``revoke``
    (``order_id``: the view knows which icons that grant held) or ``download`` (``icon_ids``:
    the one icon downloaded). ``version`` is the library's, which guards the write."""

    library_id: str
    version: int
    op: Op
    order_id: str
    icon_ids: tuple[str, ...]


def apply(event: Envelope) -> list[PopularityWrite]:
    op = POPULARITY_OPS.get(event.type)
    if op is None:
        return []
    data = event.data
    icon_ids: tuple[str, ...]
    if op == "download":
        order_id, icon_ids = "", (str(data["icon_id"]),)
    elif op == "grant":
        order_id = str(data["order_id"])
        icon_ids = tuple(sorted({str(icon["icon_id"]) for icon in data["icons"]}))
    else:
        order_id, icon_ids = str(data["order_id"]), ()
    return [
        PopularityWrite(
            library_id=event.aggregate_id,
            version=event.aggregate_version,
            op=op,
            order_id=order_id,
            icon_ids=icon_ids,
        )
    ]
