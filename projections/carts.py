"""The cart projector: pure, ``apply(envelope) -> list[CartWrite]``, no I/O.

Every write carries the cart's aggregate version; the view applies a write only when that
version is newer than the one it holds, so redelivered or replayed events change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.envelope import Envelope

CART_EVENTS = frozenset(
    {
        "Cart.Opened",
        "Cart.LineAdded",
        "Cart.LineRemoved",
        "Cart.Cleared",
        "Cart.CheckedOut",
        "Cart.Expired",
    }
)


@dataclass(frozen=True)
class CartWrite:
    """One guarded change to a cart's view: ``op`` is open, put_line, delete_line, clear,
    close or expire; ``fields`` are what the op stores; ``occurred_at`` (the event's) is the
    cart's last activity, which the expiry sweeper reads."""

    cart_id: str
    version: int
    position: int
    op: str
    fields: dict[str, Any]
    occurred_at: str = ""


def line_key(product_kind: str, product_id: str) -> str:
    return f"line:{product_kind}:{product_id}"


def apply(event: Envelope) -> list[CartWrite]:
    if event.type not in CART_EVENTS:
        return []
    data = event.data

    def write(op: str, fields: dict[str, Any]) -> list[CartWrite]:
        return [
            CartWrite(
                event.aggregate_id,
                event.aggregate_version,
                event.position,
                op,
                fields,
                event.occurred_at,
            )
        ]

    if event.type == "Cart.Opened":
        return write(
            "open",
            {
                "owner_id": data["owner_id"],
                "currency": data["currency"],
                "status": "open",
                "opened_at": event.occurred_at,
            },
        )
    if event.type == "Cart.LineAdded":
        key = line_key(data["product_kind"], str(data["product_id"]))
        line = {
            "product_kind": data["product_kind"],
            "product_id": str(data["product_id"]),
            "unit_price": data["unit_price"],
            "licence": data["licence"],
        }
        return write("put_line", {"key": key, "line": line})
    if event.type == "Cart.LineRemoved":
        return write(
            "delete_line", {"key": line_key(data["product_kind"], str(data["product_id"]))}
        )
    return write(*_emptying(event))


def _emptying(event: Envelope) -> tuple[str, dict[str, Any]]:
    """The ops on the whole cart: clear (drops the lines), close (checked out), expire."""
    if event.type == "Cart.Cleared":
        return "clear", {}
    if event.type == "Cart.Expired":
        return "expire", {"status": "expired", "expired_at": event.occurred_at}
    return "close", {"status": "checked_out", "order_id": str(event.data["order_id"])}
