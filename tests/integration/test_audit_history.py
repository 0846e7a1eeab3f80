"""Auditors' history on a scratch event store: a scripted cart → order → payment → refund story,
read back exactly through the audit API (history, time travel, the merged log, access control,
the record of every read) and the `audit export` command."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import TestClient

from api.app import create_app
from commands import messages as m
from commands.policy import Actor
from domain.ids import order_id_for_cart
from domain.order import Order
from domain.transaction import Transaction
from infra.audit.scratch import scratch_database
from infra.bootstrap import Container, bootstrap
from infra.cli import main
from infra.settings import Settings
from stream.envelope import Envelope
from tests.support import ctx, published_catalog

PAYMENTS = "service:payments"


@dataclass(frozen=True)
class Story:
    """What the scenario wrote: ids, and each aggregate's expected (type, version, position)."""

    customer: str
    cart_id: UUID
    order_id: UUID
    transaction_id: UUID
    icon_ids: tuple[UUID, ...]
    catalog_events: int
    expected: dict[UUID, list[tuple[str, int, int]]]


def write_story(container: Container, tag: str) -> Story:
    """Catalog, then cart → checkout (commands) → payment → refund (the payment aggregates
    saved through the commerce application, as the payment commands would)."""
    bus, apps = container.bus, container.applications
    catalog = published_catalog(bus, f"owner-{tag}")
    customer = f"cust-{tag}"
    who = ctx(customer, "customer")
    cart_id = bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    for icon_id in catalog.icon_ids:
        bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), who)
    free = catalog.icon_ids[1]
    bus.execute(m.RemoveFromCart(cart_id=cart_id, product_kind="icon", product_id=free), who)
    checked_out = bus.execute(m.CheckOut(cart_id=cart_id), who)
    order_id = order_id_for_cart(cart_id)
    assert checked_out.aggregate_id == order_id
    trace = {"actor": PAYMENTS, "correlation_id": f"corr-pay-{tag}"}
    order: Order = apps.commerce.repository.get(order_id)
    assert isinstance(order, Order)
    transaction_id = order.start_payment(**trace)
    transaction = Transaction.start(
        order_id=order_id, attempt=1, amount=order.total, provider="stripe", **trace
    )
    apps.commerce.save(order, transaction)
    transaction.succeed(provider_reference="pi_audit", captured=order.total, **trace)
    order.mark_paid(transaction_id=transaction.id, **trace)
    apps.commerce.save(transaction, order)
    transaction.refund(reason="requested_by_customer", **trace)
    order.refund(reason="requested_by_customer", **trace)
    apps.commerce.save(transaction, order)
    assert transaction.id == transaction_id
    return Story(
        customer=customer,
        cart_id=cart_id,
        order_id=order_id,
        transaction_id=transaction_id,
        icon_ids=catalog.icon_ids,
        catalog_events=apps.catalog.recorder.max_notification_id() or 0,
        expected={
            cart_id: [
                ("Cart.Opened", 1, 1),
                ("Cart.LineAdded", 2, 2),
                ("Cart.LineAdded", 3, 3),
                ("Cart.LineRemoved", 4, 4),
                ("Cart.CheckedOut", 5, 5),
            ],
            order_id: [
                ("Order.Placed", 1, 6),
                ("Order.PaymentStarted", 2, 7),
                ("Order.Paid", 3, 10),
                ("Order.Refunded", 4, 12),
            ],
            transaction_id: [
                ("Transaction.Started", 1, 8),
                ("Transaction.Succeeded", 2, 9),
                ("Transaction.Refunded", 3, 11),
            ],
        },
    )


@pytest.fixture(scope="module")
def scratch(settings: Settings) -> Iterator[tuple[Settings, Container, Story]]:
    with scratch_database(settings) as scratch_settings:
        container = bootstrap(scratch_settings)
        try:
            yield scratch_settings, container, write_story(container, uuid.uuid4().hex[:6])
        finally:
            container.close()


@pytest.fixture(scope="module")
def client(
    scratch: tuple[Settings, Container, Story],
) -> Iterator[TestClient]:  # type: ignore[type-arg]
    _settings, container, _story = scratch
    with TestClient(create_app(container)) as test_client:
        yield test_client


def _auth(container: Container, who: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(who, frozenset(roles))).access_token
    return {"Authorization": f"Bearer {token}"}


def _history(client: Any, headers: dict[str, str], aggregate_id: UUID) -> list[dict[str, Any]]:
    response = client.get(f"/v1/audit/aggregates/{aggregate_id}/events", headers=headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_history_is_exact_for_every_aggregate_of_the_story(
    client: Any, scratch: tuple[Settings, Container, Story]
) -> None:
    _settings, container, story = scratch
    auditor = _auth(container, "auditor-1", "auditor")
    for aggregate_id, expected in story.expected.items():
        events = _history(client, auditor, aggregate_id)
        assert [(e["type"], e["aggregate_version"], e["position"]) for e in events] == expected
        assert {e["context"] for e in events} == {"commerce"}
        assert all(len(e["chain_hash"]) == 64 for e in events)
    cart = _history(client, auditor, story.cart_id)
    assert [e["actor"] for e in cart] == [story.customer] * 5
    assert cart[1]["data"]["product_id"] == str(story.icon_ids[0])
    order = _history(client, auditor, story.order_id)
    assert [e["actor"] for e in order] == [story.customer, PAYMENTS, PAYMENTS, PAYMENTS]
    assert order[3]["data"] == {"reason": "requested_by_customer"}
    paged = client.get(
        f"/v1/audit/aggregates/{story.order_id}/events",
        params={"after_version": 1, "limit": 2},
        headers=auditor,
    ).json()
    assert [e["aggregate_version"] for e in paged["events"]] == [2, 3]
    assert paged["next_after_version"] == 3
    family = client.get(f"/v1/audit/aggregates/{uuid.uuid4()}/events", headers=auditor)
    assert (family.status_code, family.json()["code"]) == (404, "not_found")


def test_state_at_a_version_and_at_a_time(
    client: Any, scratch: tuple[Settings, Container, Story]
) -> None:
    _settings, container, story = scratch
    auditor = _auth(container, "auditor-2", "auditor")
    url = f"/v1/audit/aggregates/{story.order_id}/state"
    statuses = []
    for version in (1, 2, 3, 4):
        body = client.get(url, params={"version": version}, headers=auditor).json()
        assert (body["version"], body["head_version"], body["context"]) == (version, 4, "commerce")
        assert body["aggregate_type"] == "Order"
        statuses.append(body["state"]["status"])
    assert statuses == ["pending", "payment_processing", "paid", "refunded"]
    now = client.get(url, headers=auditor).json()
    assert (now["version"], now["state"]["status"]) == (4, "refunded")
    assert now["state"]["total"] == {"amount_minor": 500, "currency": "USD"}
    events = _history(client, auditor, story.order_id)
    paid_at = events[2]["occurred_at"]
    at_paid = client.get(url, params={"at": paid_at}, headers=auditor).json()
    assert (at_paid["version"], at_paid["state"]["status"]) == (3, "paid")
    before = dt.datetime.fromisoformat(events[0]["occurred_at"]) - dt.timedelta(seconds=1)
    missing = client.get(url, params={"at": before.isoformat()}, headers=auditor)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    too_far = client.get(url, params={"version": 5}, headers=auditor)
    assert (too_far.status_code, too_far.json()["code"]) == (404, "not_found")
    # Both bounds: the earlier of the two.
    both = client.get(url, params={"version": 4, "at": paid_at}, headers=auditor).json()
    assert (both["version"], both["state"]["status"]) == (3, "paid")
    both = client.get(url, params={"version": 2, "at": paid_at}, headers=auditor).json()
    assert (both["version"], both["state"]["status"]) == (2, "payment_processing")
    naive = client.get(url, params={"at": "2026-01-01T00:00:00"}, headers=auditor)
    assert (naive.status_code, naive.json()["code"]) == (422, "validation_failed")


def test_the_log_filters_by_type_actor_time_and_pages_with_a_cursor_per_log(
    client: Any, scratch: tuple[Settings, Container, Story]
) -> None:
    _settings, container, story = scratch
    auditor = _auth(container, "auditor-3", "auditor")
    paid = client.get("/v1/audit/log", params={"type": "Order.Paid"}, headers=auditor).json()
    assert [(e["context"], e["position"]) for e in paid["events"]] == [("commerce", 10)]
    mine = client.get("/v1/audit/log", params={"actor": story.customer}, headers=auditor).json()
    assert [(e["context"], e["position"]) for e in mine["events"]] == [
        ("commerce", p) for p in (1, 2, 3, 4, 5, 6)
    ]
    assert mine["more"] is False
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"context": "commerce", "limit": 5}
        if cursor:
            params["from_position"] = cursor
        page = client.get("/v1/audit/log", params=params, headers=auditor).json()
        seen += [e["position"] for e in page["events"]]
        cursor = page["next_from_position"]
        if not page["more"]:
            break
    assert seen == list(range(1, 13))
    assert cursor == "commerce:13"
    refunded_at = _history(client, auditor, story.order_id)[3]["occurred_at"]
    since = client.get(
        "/v1/audit/log",
        params={"context": "commerce", "since": refunded_at},
        headers=auditor,
    ).json()
    assert [e["type"] for e in since["events"]] == ["Order.Refunded"]
    until = client.get(
        "/v1/audit/log",
        params={"context": "commerce", "until": refunded_at, "from_position": "commerce:11"},
        headers=auditor,
    ).json()
    assert [e["type"] for e in until["events"]] == ["Transaction.Refunded"]
    catalog = client.get(
        "/v1/audit/log",
        params={"from_position": f"catalog:{story.catalog_events},commerce:99,identity:9"},
        headers=auditor,
    ).json()
    assert [(e["context"], e["position"]) for e in catalog["events"]][:1] == [
        ("catalog", story.catalog_events)
    ]
    bad = client.get("/v1/audit/log", params={"from_position": "shop:1"}, headers=auditor)
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_failed")


def _audit_head(container: Container) -> int:
    return container.audit_application.recorder.max_notification_id() or 0


@pytest.mark.parametrize(
    "roles", [("customer",), ("contributor",), ("service",), ("auditor", "denyall")]
)
def test_everyone_but_auditors_and_admins_gets_403_and_nothing_is_recorded(
    client: Any, scratch: tuple[Settings, Container, Story], roles: tuple[str, ...]
) -> None:
    _settings, container, story = scratch
    headers = _auth(container, f"someone-{uuid.uuid4().hex[:6]}", *roles)
    before = _audit_head(container)
    for path in (
        f"/v1/audit/aggregates/{story.order_id}/events",
        f"/v1/audit/aggregates/{story.order_id}/state",
        "/v1/audit/log",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 403, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "forbidden"
        anonymous = client.get(path)
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")
        # Access is decided before the parameters are read: invalid ones tell them nothing.
        invalid = {"limit": "0", "version": "0", "since": "yesterday"}
        refused = client.get(path, params=invalid, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), path
        assert client.get(path, params=invalid).status_code == 401
        auditor = _auth(container, "auditor-invalid", "auditor")
        checked = client.get(path, params=invalid, headers=auditor)
        assert (checked.status_code, checked.json()["code"]) == (422, "validation_failed")
    assert _audit_head(container) == before


@pytest.mark.parametrize(
    ("query", "key", "message"),
    [
        ("until=0.5", "until", "Invalid RFC3339"),
        ("until=2026-01-01T00:00:00", "until", "timezone"),
        ("context=null", "context", "must have a value"),
    ],
    ids=["number-as-time", "time-without-zone", "null-choice"],
)
def test_the_log_takes_times_and_choices_only_in_their_documented_form(
    client: Any, scratch: tuple[Settings, Container, Story], query: str, key: str, message: str
) -> None:
    _settings, container, _story = scratch
    before = _audit_head(container)
    auditor = _auth(container, "auditor-forms", "auditor")
    response = client.get(f"/v1/audit/log?{query}", headers=auditor)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_failed"
    assert [error["key"] for error in body["errors"]] == [key]
    assert message in body["errors"][0]["message"]
    assert _audit_head(container) == before


def test_every_audit_read_is_recorded_with_who_what_and_when(
    client: Any, scratch: tuple[Settings, Container, Story]
) -> None:
    _settings, container, story = scratch
    auditor = f"auditor-{uuid.uuid4().hex[:6]}"
    admin = f"admin-{uuid.uuid4().hex[:6]}"
    before = _audit_head(container)
    as_auditor = _auth(container, auditor, "auditor")
    client.get(f"/v1/audit/aggregates/{story.cart_id}/events", headers=as_auditor)
    client.get(
        f"/v1/audit/aggregates/{story.order_id}/state", params={"version": 2}, headers=as_auditor
    )
    client.get("/v1/audit/log", params={"type": "Order.Paid"}, headers=as_auditor)
    by_admin = client.get(
        f"/v1/audit/aggregates/{story.transaction_id}/events",
        headers=_auth(container, admin, "admin"),
    )
    assert by_admin.status_code == 200
    recorded = client.get(
        "/v1/audit/log",
        params={"context": "audit", "from_position": before + 1},
        headers=as_auditor,
    ).json()["events"]
    assert [
        (
            e["type"],
            e["actor"],
            e["data"]["operation"],
            e["data"]["target"],
            e["data"]["parameters"],
        )
        for e in recorded
    ] == [
        (
            "AuditAccess.Recorded",
            auditor,
            "auditAggregateEvents",
            str(story.cart_id),
            {"after_version": "0", "limit": "100"},
        ),
        (
            "AuditAccess.Recorded",
            auditor,
            "auditAggregateState",
            str(story.order_id),
            {"version": "2"},
        ),
        (
            "AuditAccess.Recorded",
            auditor,
            "auditLog",
            "log",
            {"limit": "100", "type": "Order.Paid"},
        ),
        (
            "AuditAccess.Recorded",
            admin,
            "auditAggregateEvents",
            str(story.transaction_id),
            {"after_version": "0", "limit": "100"},
        ),
        # the read that lists them is recorded before it answers, so it lists itself too
        (
            "AuditAccess.Recorded",
            auditor,
            "auditLog",
            "log",
            {"context": "audit", "from_position": str(before + 1), "limit": "100"},
        ),
    ]
    assert [e["position"] for e in recorded] == list(range(before + 1, before + 6))
    assert recorded[3]["data"]["roles"] == ["admin"]


def test_export_writes_exactly_the_story_as_public_envelopes(
    scratch: tuple[Settings, Container, Story],
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    scratch_settings, container, story = scratch
    monkeypatch.setenv("ICONMARKET_POSTGRES_DB", scratch_settings.postgres_db)
    before = _audit_head(container)
    assert main(["audit", "export", "--context", "commerce"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    envelopes = [msgspec.json.decode(line, type=Envelope) for line in lines]
    expected = sorted(
        (position, kind, str(aggregate_id), version)
        for aggregate_id, events in story.expected.items()
        for kind, version, position in events
    )
    assert [(e.position, e.type, e.aggregate_id, e.aggregate_version) for e in envelopes] == (
        expected
    )
    assert {e.context for e in envelopes} == {"commerce"}
    assert json.loads(lines[0])["envelope_version"] == 1
    refunded_at = envelopes[-1].occurred_at
    assert main(["audit", "export", "--context", "commerce", "--since", refunded_at]) == 0
    tail = [json.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    assert [(e["type"], e["position"]) for e in tail] == [("Order.Refunded", 12)]
    assert (
        main(["audit", "export", "--context", "commerce", "--until", envelopes[0].occurred_at]) == 0
    )
    assert capsysbinary.readouterr().out == b""
    audit = container.audit_application
    recorded: list[Any] = [
        audit.mapper.to_domain_event(n)
        for n in audit.recorder.select_notifications(start=before + 1, limit=10)
    ]
    commerce = {"context": "['commerce']"}
    assert [(type(e).__qualname__, e.operation, e.parameters) for e in recorded] == [
        ("AuditAccess.Recorded", "cliExport", commerce),
        ("AuditAccess.Recorded", "cliExport", {**commerce, "since": refunded_at}),
        ("AuditAccess.Recorded", "cliExport", {**commerce, "until": envelopes[0].occurred_at}),
    ]
    assert all(e.actor.startswith("cli:") for e in recorded)


def test_the_log_filters_past_an_event_whose_json_holds_a_nul(settings: Settings) -> None:
    """JSON may escape U+0000 (a provider reference, say), which PostgreSQL's jsonb refuses:
    the actor and time filters still read such a row instead of failing the whole query."""
    from domain.money import Money
    from infra.audit.history import LogFilter, scan

    with scratch_database(settings) as scratch_settings:
        container = bootstrap(scratch_settings)
        try:
            commerce = container.applications.commerce
            nul = {"actor": "service:pay\x00ments", "correlation_id": "corr-nul"}
            plain = {"actor": PAYMENTS, "correlation_id": "corr-plain"}
            for trace, reference in ((nul, "pi_\x00nul"), (plain, "pi_plain")):
                transaction = Transaction.start(
                    order_id=uuid.uuid4(),
                    attempt=1,
                    amount=Money(500, "USD"),
                    provider="stripe",
                    provider_reference=reference,
                    **trace,
                )
                commerce.save(transaction)
            since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

            def actors(wanted: LogFilter) -> list[str]:
                return [row["actor"] for page in scan(commerce, wanted) for row in page]

            assert actors(LogFilter(actor=PAYMENTS)) == [PAYMENTS]
            assert actors(LogFilter(since=since)) == [nul["actor"], PAYMENTS]
            # (the API refuses a NUL in a filter: NO_NUL; PostgreSQL text cannot hold one)
            assert actors(LogFilter(actor="service:pay\ufffdments", since=since)) == [nul["actor"]]
        finally:
            container.close()
