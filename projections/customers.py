"""The per-customer projector (orders, library, favourites): pure, ``apply(envelope) ->
list[CustomerWrite]``, no I/O.

Each write names its document (an order, or the customer's library, which also holds the
favourites) and carries that aggregate's version; the view applies a write only when its version
is newer than the one it holds, so redelivered or replayed events change nothing.

Only ``Order.Placed`` and ``Library.Opened`` name the customer; every later write of the same
aggregate has ``customer_id == ""`` and the view resolves the owner from what it stored when the
aggregate's first event was applied (an aggregate's own events always arrive in order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stream.envelope import Envelope

DocKind = Literal["order", "library"]

# The order status each later order event moves to.
ORDER_STATUS = {
    "Order.PaymentStarted": "payment_processing",
    "Order.Paid": "paid",
    "Order.PaymentFailed": "failed",
    "Order.Fulfilled": "fulfilled",
    "Order.Cancelled": "cancelled",
    "Order.Refunded": "refunded",
}
# The op of each library event.
LIBRARY_OPS = {
    "Library.Opened": "open",
    "Library.EntitlementsGranted": "grant",
    "Library.EntitlementsRevoked": "revoke",
    "Library.DownloadRecorded": "download",
    "Library.FavouriteAdded": "favourite",
    "Library.FavouriteRemoved": "unfavourite",
}
CUSTOMER_EVENTS = frozenset({"Order.Placed", *ORDER_STATUS, *LIBRARY_OPS})


@dataclass(frozen=True)
class CustomerWrite:
    """One guarded change to a customer's document.

    ``doc`` is ``order`` (``doc_id``: the order id) or ``library`` (``doc_id``: the library id).
    Ops: ``place`` and ``status`` for orders; ``open``, ``grant``, ``revoke``, ``download``,
    ``favourite`` and ``unfavourite`` for the library. ``customer_id`` is empty when the event
    does not name the customer (see the module docstring).
    """

    customer_id: str
    doc: DocKind
    doc_id: str
    version: int
    position: int
    op: str
    fields: dict[str, Any]


def order_line(line: dict[str, Any]) -> dict[str, Any]:
    """An order line as the view stores it: frozen price, licence and icon version."""
    return {
        "product_kind": line["product_kind"],
        "product_id": str(line["product_id"]),
        "unit_price": dict(line["unit_price"]),
        "licence": line["licence"],
        "icon_version": line["icon_version"],
    }


def apply(event: Envelope) -> list[CustomerWrite]:
    if event.type not in CUSTOMER_EVENTS:
        return []
    doc: DocKind = "order" if event.aggregate_type == "Order" else "library"
    customer, op, fields = _order_change(event) if doc == "order" else _library_change(event)
    return [
        CustomerWrite(
            customer_id=customer,
            doc=doc,
            doc_id=event.aggregate_id,
            version=event.aggregate_version,
            position=event.position,
            op=op,
            fields=fields,
        )
    ]


def _order_change(event: Envelope) -> tuple[str, str, dict[str, Any]]:
    """(customer or "", op, fields) of an order event."""
    data = event.data
    if event.type != "Order.Placed":
        return "", "status", {"status": ORDER_STATUS[event.type]}
    fields = {
        "cart_id": str(data["cart_id"]),
        "status": "pending",
        "lines": [order_line(line) for line in data["lines"]],
        "total": dict(data["total"]),
        "placed_at": event.occurred_at,
    }
    return str(data["customer_id"]), "place", fields


def _library_change(event: Envelope) -> tuple[str, str, dict[str, Any]]:
    """(customer or "", op, fields) of a library event."""
    data = event.data
    op = LIBRARY_OPS[event.type]
    if op == "open":
        return str(data["customer_id"]), op, {"opened_at": event.occurred_at}
    if op == "grant":
        icons = [
            {"icon_id": str(icon["icon_id"]), "icon_version": icon["icon_version"]}
            for icon in data["icons"]
        ]
        grant = {"order_id": str(data["order_id"]), "icons": icons, "granted_at": event.occurred_at}
        return "", op, grant
    if op == "revoke":
        return "", op, {"order_id": str(data["order_id"])}
    return "", op, {"icon_id": str(data["icon_id"])}
