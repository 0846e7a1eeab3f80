"""The cart projector is pure: envelopes in, guarded writes out."""

from __future__ import annotations

from typing import Any

from infra.settings import MAX_CART_TTL_S
from projections.cart_view import CART_TTL_S, CART_VIEW_TTL_S
from projections.carts import apply, line_key
from tests.support import cart_envelopes


def test_a_cart_story_becomes_versioned_writes() -> None:
    envelopes = cart_envelopes()
    writes = [w for e in envelopes for w in apply(e)]
    assert [(w.op, w.version) for w in writes] == [
        ("open", 1),
        ("put_line", 2),
        ("put_line", 3),
        ("delete_line", 4),
        ("close", 5),
    ]
    assert writes[0].fields["owner_id"] == "cust-1"
    assert writes[0].fields["currency"] == "USD"
    first = envelopes[1].data
    assert writes[1].fields["key"] == line_key("icon", str(first["product_id"]))
    assert writes[1].fields["line"]["unit_price"] == {"amount_minor": 250, "currency": "USD"}
    assert writes[3].fields == {"key": writes[1].fields["key"]}
    assert writes[4].fields["status"] == "checked_out"
    assert [w.position for w in writes] == [e.position for e in envelopes]


def test_other_events_write_nothing() -> None:
    envelope = cart_envelopes()[0]
    other = type(envelope)(
        **{**{f: getattr(envelope, f) for f in envelope.__struct_fields__}, "type": "Order.Placed"}
    )
    assert apply(other) == []


def _retyped(envelope: Any, event_type: str, data: dict[str, Any], version: int) -> Any:
    fields = {f: getattr(envelope, f) for f in envelope.__struct_fields__}
    return type(envelope)(
        **{**fields, "type": event_type, "data": data, "aggregate_version": version}
    )


def test_an_expired_cart_becomes_an_expire_write_carrying_its_time() -> None:
    opened = cart_envelopes()[0]
    expired = _retyped(opened, "Cart.Expired", {"idle_s": 604800}, 6)
    (write,) = apply(expired)
    assert (write.op, write.version, write.position) == ("expire", 6, opened.position)
    assert write.fields == {"status": "expired", "expired_at": opened.occurred_at}
    assert write.occurred_at == opened.occurred_at


def test_every_write_carries_its_events_time_for_the_idle_index() -> None:
    envelopes = cart_envelopes()
    writes = [w for e in envelopes for w in apply(e)]
    assert [w.occurred_at for w in writes] == [e.occurred_at for e in envelopes]


def test_the_view_outlives_the_longest_cart_ttl_by_a_day() -> None:
    assert CART_VIEW_TTL_S == MAX_CART_TTL_S + 24 * 3600 == CART_TTL_S + 24 * 3600
