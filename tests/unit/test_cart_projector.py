"""The cart projector is pure: envelopes in, guarded writes out."""

from __future__ import annotations

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
