"""The event contract: the checked-in schemas are current, every event the system produces is a
valid envelope of its type, redacted and unknown fields are refused, and the AsyncAPI document
lists every type on exactly the three context topics."""

from __future__ import annotations

import json
import typing
import uuid
from collections import Counter
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, TypedDict
from uuid import UUID

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from commands import messages as m
from commands.applications import Applications, build_applications
from commands.bus import CommandBus
from commands.routes import ROUTES
from domain.account import Account
from domain.icon_import import IconImport, import_id_for
from domain.library import Library
from domain.media import MediaFormat
from domain.money import Money
from domain.order import Order, OrderLine
from domain.products import Licence, ProductKind, ProductRef
from domain.traced_aggregate import TracedAggregate
from domain.transaction import PaymentIntentLink, Transaction
from infra.cli import main, schema_cmd
from infra.cli.schema_cmd import EVENTS_DIR, SCHEMAS_DIR, Drift, drift, export
from infra.settings import REPO_ROOT
from stream.asyncapi import HEADERS
from stream.envelope import REDACTED, Envelope, decode, encode, headers, to_envelope
from stream.schemas import (
    Definitions,
    envelope_schema,
    event_schema,
    event_types,
    event_types_by_context,
    type_schema,
)
from tests.support import SERVICE, Catalog, ctx, published_catalog

TYPES = {event_type.name: event_type for event_type in event_types()}
SCHEMAS = {name: event_schema(event_type) for name, event_type in TYPES.items()}
FORMATS = Draft202012Validator.FORMAT_CHECKER
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FORMATS)


def _errors(name: str, document: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = _validator(SCHEMAS[name]).iter_errors(document)
    return sorted((str(e.validator), e.json_path, e.message) for e in found)


# --- the catalogue and the checked-in files


def test_every_event_type_of_every_aggregate_is_discovered() -> None:
    assert event_types_by_context() == {
        "catalog": [
            "Family.Created",
            "Family.DetailsUpdated",
            "Family.PreviewRecorded",
            "Family.Published",
            "Family.Unpublished",
            "Icon.Created",
            "Icon.DerivativesRecorded",
            "Icon.DetailsUpdated",
            "Icon.LicenceChanged",
            "Icon.OriginalRecorded",
            "Icon.PriceChanged",
            "Icon.Published",
            "Icon.RenderRefused",
            "Icon.Retired",
            "Icon.SvgRevised",
            "Icon.Unpublished",
            "IconImport.ImportCompleted",
            "IconImport.ImportRefused",
            "IconImport.ImportReported",
            "IconImport.ImportRequested",
            "IconSet.BundlePriceChanged",
            "IconSet.Created",
            "IconSet.IconAdded",
            "IconSet.PreviewRecorded",
            "IconSet.Published",
            "IconSet.Renamed",
            "IconSet.StyleChanged",
            "IconSet.Unpublished",
        ],
        "commerce": [
            "Cart.CheckedOut",
            "Cart.Cleared",
            "Cart.Expired",
            "Cart.LineAdded",
            "Cart.LineRemoved",
            "Cart.Opened",
            "Library.DownloadRecorded",
            "Library.EntitlementsGranted",
            "Library.EntitlementsRevoked",
            "Library.FavouriteAdded",
            "Library.FavouriteRemoved",
            "Library.Opened",
            "Order.Cancelled",
            "Order.Fulfilled",
            "Order.Paid",
            "Order.PaymentFailed",
            "Order.PaymentStarted",
            "Order.Placed",
            "Order.Refunded",
            "PaymentIntentLink.Linked",
            "Transaction.AlertRaised",
            "Transaction.Disputed",
            "Transaction.Failed",
            "Transaction.IntentCreated",
            "Transaction.Refunded",
            "Transaction.Started",
            "Transaction.Succeeded",
        ],
        "identity": ["Account.PasswordChanged", "Account.Registered", "Account.RolesChanged"],
    }
    assert len(TYPES) == 58


def test_the_checked_in_contract_files_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert drift(REPO_ROOT) == Drift(stale=[], missing=[], extra=[])
    assert main(["schema", "export", "--check"]) == 0
    assert capsys.readouterr().err == ""


def test_check_lists_stale_missing_and_extra_files_and_export_repairs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written = export(tmp_path)
    assert written.missing == sorted(schema_cmd.generated_files())
    assert len(written.missing) == 60
    (tmp_path / SCHEMAS_DIR / "Icon.Published.json").write_text("{}\n")
    (tmp_path / EVENTS_DIR / "envelope.json").unlink()
    (tmp_path / SCHEMAS_DIR / "Icon.Deleted.json").write_text("{}\n")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    monkeypatch.setattr(schema_cmd, "REPO_ROOT", tmp_path)
    assert main(["schema", "export", "--check"]) == 1

    assert capsys.readouterr().err.splitlines() == [
        "stale: docs/events/schemas/Icon.Published.json",
        "missing: docs/events/envelope.json",
        "extra: docs/events/schemas/Icon.Deleted.json",
        "run `iconmarket schema export` to regenerate them",
    ]
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
    assert main(["schema", "export"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wrote docs/events/schemas/Icon.Published.json",
        "wrote docs/events/envelope.json",
        "deleted docs/events/schemas/Icon.Deleted.json",
        "58 event types; docs/events is current",
    ]
    assert drift(tmp_path).current
    assert not (tmp_path / SCHEMAS_DIR / "Icon.Deleted.json").exists()


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    for schema in [*SCHEMAS.values(), envelope_schema()]:
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_envelope_schema_describes_exactly_the_envelope_fields() -> None:
    fields = sorted(Envelope.__struct_fields__)
    for schema in [*SCHEMAS.values(), envelope_schema()]:
        assert sorted(schema["properties"]) == fields
        assert schema["required"] == fields
        assert schema["additionalProperties"] is False


def test_redacted_fields_are_real_fields_and_absent_from_the_schemas() -> None:
    for name, hidden in REDACTED.items():
        annotated = typing.get_type_hints(TYPES[name].event_class)
        assert hidden <= annotated.keys()
        assert not hidden & SCHEMAS[name]["properties"]["data"]["properties"].keys()
    assert SCHEMAS["Account.Registered"]["properties"]["data"]["required"] == ["roles"]


# --- every event the system produces validates


def _drive_commands(bus: CommandBus) -> tuple[Catalog, UUID]:
    """Runs every command there is; returns the catalog and the registered account's id."""
    erin = ctx("erin")
    account_id = bus.execute(
        m.RegisterAccount(email="Erin@Example.com", password="correct horse battery staple"), erin
    ).aggregate_id
    bus.execute(
        m.ChangeRoles(account_id=account_id, roles=("customer", "contributor")),
        ctx("root", "admin"),
    )
    catalog = published_catalog(bus, "carol", prices=(500,), bundle=900)
    carol = ctx("carol", "contributor")
    icon_id = catalog.icon_ids[0]
    bus.execute(
        m.UpdateFamily(family_id=catalog.family_id, name="Arrows Pro", description="All arrows."),
        carol,
    )
    bus.execute(
        m.UpdateIconSet(
            set_id=catalog.set_id,
            name="Arrows Solid",
            style="solid",
            bundle_price=m.Money(amount_minor=1200, currency="USD"),
        ),
        carol,
    )
    bus.execute(m.UpdateIconDetails(icon_id=icon_id, name="up", categories=("nav",)), carol)
    bus.execute(
        m.ChangeIconPrice(icon_id=icon_id, price=m.Money(amount_minor=700, currency="USD")), carol
    )
    bus.execute(m.ChangeIconLicence(icon_id=icon_id, licence="extended"), carol)
    _shop(bus, catalog)
    preview = {"key": "previews/p.png", "member_hash": "h1", "icon_ids": (icon_id,)}
    bus.execute(m.RecordIconSetPreview(set_id=catalog.set_id, **preview), SERVICE)
    bus.execute(m.RecordFamilyPreview(family_id=catalog.family_id, **preview), SERVICE)
    for zip_hash in ("zip-sha256", "zip-refused"):
        bus.execute(
            m.RequestImport(
                set_id=catalog.set_id,
                zip_hash=zip_hash,
                request_key="",
                zip_key=f"imports/{zip_hash}.zip",
                size_bytes=2048,
            ),
            carol,
        )
    done, refused = (import_id_for(catalog.set_id, h, "") for h in ("zip-sha256", "zip-refused"))
    bus.execute(
        m.CompleteImport(
            import_id=done,
            created=(m.ImportedIcon(file="up.svg", icon_id=icon_id),),
            rejected=(m.ImportRejection(file="x.svg", code="svg_script", detail="<script>"),),
        ),
        carol,
    )
    bus.execute(
        m.RefuseImport(import_id=refused, code="zip_bomb", detail="the entries expand"), carol
    )
    bus.execute(
        m.ReviseSvg(
            icon_id=icon_id,
            original=m.SvgOriginal(
                key="originals/v2.svg",
                content_hash="sha256-v2",
                size_bytes=400,
                width=32,
                height=32,
            ),
        ),
        carol,
    )
    bus.execute(
        m.RecordRenderRefusal(
            icon_id=icon_id,
            source_hash="sha256-v2",
            renderer_version="r2",
            code="render_timeout",
            detail="the png-64 pass used more than 5 s of CPU time",
        ),
        SERVICE,
    )
    bus.execute(m.UnpublishIcon(icon_id=icon_id), carol)
    bus.execute(m.RetireIcon(icon_id=icon_id), carol)
    bus.execute(m.UnpublishIconSet(set_id=catalog.set_id), carol)
    bus.execute(m.UnpublishFamily(family_id=catalog.family_id), carol)
    return catalog, account_id


def _shop(bus: CommandBus, catalog: Catalog) -> None:
    dave = ctx("dave", "customer")
    icon_id = catalog.icon_ids[0]
    cart_id = bus.execute(m.OpenCart(currency="USD"), dave).aggregate_id
    bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), dave)
    bus.execute(m.AddToCart(cart_id=cart_id, product_kind="set", product_id=catalog.set_id), dave)
    bus.execute(
        m.RemoveFromCart(cart_id=cart_id, product_kind="set", product_id=catalog.set_id), dave
    )
    bus.execute(m.ClearCart(cart_id=cart_id), dave)
    bus.execute(m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=icon_id), dave)
    order_id = bus.execute(m.CheckOut(cart_id=cart_id), dave).aggregate_id
    bus.execute(m.CancelOrder(order_id=order_id), dave)
    bus.execute(m.AddFavourite(icon_id=icon_id), dave)
    bus.execute(m.RemoveFavourite(icon_id=icon_id), dave)
    idle_cart = bus.execute(m.OpenCart(currency="USD"), dave).aggregate_id
    bus.execute(m.ExpireCart(cart_id=idle_cart, idle_s=0), ctx("service:carts", "service"))


def _paid_and_refunded(catalog: Catalog) -> list[TracedAggregate]:
    """Order, payment and library life cycles, which no command drives yet."""
    trace = {"actor": "service:payments", "correlation_id": "corr-payments"}
    icon_id = catalog.icon_ids[0]
    order = Order.place(
        cart_id=uuid.uuid4(),
        customer_id="dave",
        lines=[
            OrderLine(
                ProductRef(ProductKind.ICON, icon_id), Money(700, "USD"), Licence.EXTENDED, 1
            ),
            OrderLine(
                ProductRef(ProductKind.SET, catalog.set_id),
                Money(1200, "USD"),
                Licence.STANDARD,
                None,
            ),
        ],
        **trace,
    )
    order.start_payment(**trace)
    declined = Transaction.start(
        order_id=order.id, attempt=1, amount=order.total, provider="stripe", **trace
    )
    declined.fail(provider_reference=None, reason="card_declined", **trace)
    order.mark_failed(transaction_id=declined.id, reason="card_declined", **trace)
    order.start_payment(**trace)
    paid = Transaction.start(
        order_id=order.id,
        attempt=2,
        amount=order.total,
        provider="stripe",
        provider_reference="pi_2",
        **trace,
    )
    paid.succeed(provider_reference="pi_2", captured=order.total, **trace)
    order.mark_paid(transaction_id=paid.id, **trace)
    order.fulfil(**trace)
    library = Library.open(customer_id="dave", **trace)
    library.grant(order_id=order.id, icons={icon_id: 1}, **trace)
    library.record_download(
        icon_id=icon_id, format=MediaFormat.PNG, size=64, size_bytes=900, **trace
    )
    library.record_download(
        icon_id=icon_id, format=MediaFormat.SVG, size=None, size_bytes=400, **trace
    )
    order.refund(reason="asked by the customer", **trace)
    paid.refund(reason="asked by the customer", **trace)
    library.revoke(order_id=order.id, reason="refunded", **trace)
    free = Order.place(
        cart_id=uuid.uuid4(),
        customer_id="erin",
        lines=[
            OrderLine(ProductRef(ProductKind.ICON, icon_id), Money(0, "USD"), Licence.STANDARD, 1)
        ],
        **trace,
    )
    free.mark_paid(transaction_id=None, **trace)
    mismatched = Transaction.start(
        order_id=uuid.uuid4(), attempt=1, amount=Money(100, "USD"), provider="stripe", **trace
    )
    mismatched.record_intent(provider_reference="pi_3", **trace)
    link = PaymentIntentLink.link(
        provider="stripe", provider_reference="pi_3", transaction_id=mismatched.id, **trace
    )
    mismatched.succeed(provider_reference="pi_3", captured=Money(90, "USD"), **trace)
    mismatched.dispute(reason="fraudulent", **trace)
    legacy = IconImport._create(  # an import made before imports had a worker
        IconImport.ImportReported,
        set_id=catalog.set_id,
        owner_id="carol",
        zip_hash="zip-legacy",
        request_key="",
        created=[{"file": "up.svg", "icon_id": str(icon_id)}],
        rejected=[],
        actor="carol",
        correlation_id="corr-legacy-import",
    )
    return [order, declined, paid, library, free, mismatched, link, legacy]


@pytest.fixture
def apps() -> Iterator[Applications]:
    built = build_applications(None)
    yield built
    built.close()


def _produced_envelopes(apps: Applications) -> list[Envelope]:
    """Every stored event as the relay publishes it, then the directly built aggregates' events
    at the positions that would follow in their context's log."""
    bus = CommandBus(apps, ROUTES)
    catalog, account_id = _drive_commands(bus)
    envelopes = [
        to_envelope(app.context, notification.id, app.mapper.to_domain_event(notification))
        for app in apps.all()
        for notification in app.recorder.select_notifications(start=1, limit=10**6)
    ]
    account = apps.identity.repository.get(account_id)
    assert isinstance(account, Account)
    account.change_password_hash(password_hash=HASH, actor="erin", correlation_id="corr-password")
    heads = {app.context: app.recorder.max_notification_id() or 0 for app in apps.all()}
    for aggregate in [account, *_paid_and_refunded(catalog)]:
        for event in aggregate.collect_events():
            context = TYPES[type(event).__qualname__].context
            heads[context] += 1
            envelopes.append(to_envelope(context, heads[context], event))
    return envelopes


def test_every_event_type_is_produced_and_validates_against_its_schema(
    apps: Applications,
) -> None:
    envelopes = _produced_envelopes(apps)
    any_envelope = _validator(envelope_schema())
    for envelope in envelopes:
        payload = encode(envelope)
        published = json.loads(payload)
        assert _errors(envelope.type, published) == []
        any_envelope.validate(published)
        assert encode(decode(payload)) == payload
    covered = Counter(envelope.type for envelope in envelopes)
    assert set(covered) == set(TYPES)
    assert len(covered) == len(TYPES) == 58
    assert (covered["Icon.DerivativesRecorded"], covered["Order.PaymentStarted"]) == (1, 2)


def test_a_registered_account_publishes_only_its_roles(apps: Applications) -> None:
    bus = CommandBus(apps, ROUTES)
    bus.execute(m.RegisterAccount(email="ann@example.com", password="a long password"), ctx("ann"))
    (notification,) = apps.identity.recorder.select_notifications(start=1, limit=10)
    envelope = to_envelope(
        "identity", notification.id, apps.identity.mapper.to_domain_event(notification)
    )
    assert envelope.data == {"roles": ["customer"]}
    assert b"ann@example.com" not in encode(envelope)
    assert b"argon2" not in encode(envelope)


# --- what the schemas refuse


def _registered() -> dict[str, Any]:
    account = Account.register(
        email="ann@example.com", password_hash=HASH, actor="ann", correlation_id="corr-1"
    )
    (event,) = account.collect_events()
    return json.loads(encode(to_envelope("identity", 1, event)))


@pytest.mark.parametrize(
    ("field", "value"), [("password_hash", HASH), ("email", "ann@example.com")]
)
def test_a_redacted_field_in_an_account_registered_envelope_fails(field: str, value: str) -> None:
    published = _registered()
    assert _errors("Account.Registered", published) == []
    published["data"][field] = value
    assert _errors("Account.Registered", published) == [
        (
            "additionalProperties",
            "$.data",
            f"Additional properties are not allowed ('{field}' was unexpected)",
        )
    ]


def _order_placed() -> dict[str, Any]:
    line = OrderLine(
        ProductRef(ProductKind.ICON, uuid.uuid4()), Money(5, "USD"), Licence.STANDARD, 1
    )
    order = Order.place(
        cart_id=uuid.uuid4(), customer_id="dave", lines=[line], actor="dave", correlation_id="c2"
    )
    (event,) = order.collect_events()
    return json.loads(encode(to_envelope("commerce", 7, event)))


def _mutate(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("data", "coupon"),
            "SPRING",
            (
                "additionalProperties",
                "$.data",
                "Additional properties are not allowed ('coupon' was unexpected)",
            ),
        ),
        (
            ("data", "total", "tax"),
            0,
            (
                "additionalProperties",
                "$.data.total",
                "Additional properties are not allowed ('tax' was unexpected)",
            ),
        ),
        (
            ("data", "lines", 0, "icon_version"),
            "1",
            (
                "anyOf",
                "$.data.lines[0].icon_version",
                "'1' is not valid under any of the given schemas",
            ),
        ),
        (("type",), "Order.Paid", ("const", "$.type", "'Order.Placed' was expected")),
        (("context",), "catalog", ("const", "$.context", "'commerce' was expected")),
        (("schema_version",), 2, ("const", "$.schema_version", "1 was expected")),
        (("aggregate_id",), "order-1", ("format", "$.aggregate_id", "'order-1' is not a 'uuid'")),
        (
            ("occurred_at",),
            "yesterday",
            ("format", "$.occurred_at", "'yesterday' is not a 'date-time'"),
        ),
        (("position",), 0, ("minimum", "$.position", "0 is less than the minimum of 1")),
    ],
)
def test_a_malformed_order_placed_envelope_fails_exactly_where_it_is_wrong(
    path: tuple[str | int, ...], value: Any, expected: tuple[str, str, str]
) -> None:
    published = _order_placed()
    assert _errors("Order.Placed", published) == []
    _mutate(published, path, value)
    assert _errors("Order.Placed", published) == [expected]


def test_a_missing_data_field_fails() -> None:
    published = _registered()
    del published["data"]["roles"]
    assert _errors("Account.Registered", published) == [
        ("required", "$.data", "'roles' is a required property")
    ]
    with pytest.raises(ValidationError):
        _validator(SCHEMAS["Account.Registered"]).validate(published)


def test_the_example_envelope_for_analysts_is_valid() -> None:
    text = (REPO_ROOT / "docs" / "analysts.md").read_text()
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    assert example["type"] == "Icon.PriceChanged"
    assert _errors("Icon.PriceChanged", example) == []
    _validator(envelope_schema()).validate(example)


# --- the annotation mapping


class _Shade(StrEnum):
    LIGHT = "light"
    DARK = "dark"


class _Swatch(TypedDict):
    shade: _Shade
    hex: str | None


@pytest.mark.parametrize(
    ("hint", "schema", "defs"),
    [
        (_Shade, {"type": "string", "enum": ["light", "dark"]}, {}),
        (UUID | None, {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}, {}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}, {}),
        (dict[str, bool], {"type": "object", "additionalProperties": {"type": "boolean"}}, {}),
        (
            list[_Swatch],
            {"type": "array", "items": {"$ref": "#/$defs/_Swatch"}},
            {
                "_Swatch": {
                    "type": "object",
                    "title": "_Swatch",
                    "properties": {
                        "shade": {"type": "string", "enum": ["light", "dark"]},
                        "hex": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    },
                    "required": ["hex", "shade"],
                    "additionalProperties": False,
                }
            },
        ),
    ],
)
def test_annotations_map_to_json_schema(
    hint: Any, schema: dict[str, Any], defs: dict[str, Any]
) -> None:
    definitions = Definitions()
    assert type_schema(hint, definitions) == schema
    assert definitions.schemas == defs


@pytest.mark.parametrize("hint", [bytes, tuple[int, str], dict[int, str]])
def test_an_annotation_without_a_mapping_is_refused(hint: Any) -> None:
    with pytest.raises(TypeError, match="no JSON Schema mapping"):
        type_schema(hint, Definitions())


# --- the AsyncAPI document


def _asyncapi() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / EVENTS_DIR / "asyncapi.yaml").read_text())
    return loaded


def test_the_asyncapi_document_has_every_type_on_exactly_the_three_context_topics() -> None:
    document = _asyncapi()
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["development"]["host"] == "localhost:19092"
    assert document["servers"]["development"]["protocol"] == "kafka"
    channels = document["channels"]
    assert {name: channel["address"] for name, channel in channels.items()} == {
        "catalog": "iconmarket.catalog.v1",
        "commerce": "iconmarket.commerce.v1",
        "identity": "iconmarket.identity.v1",
    }
    assert {name: sorted(channel["messages"]) for name, channel in channels.items()} == (
        event_types_by_context()
    )
    assert sorted(document["components"]["messages"]) == sorted(TYPES)
    for name, message in document["components"]["messages"].items():
        payload = message["payload"]
        assert payload["schemaFormat"] == "application/schema+json;version=draft-2020-12"
        referenced = REPO_ROOT / EVENTS_DIR / payload["schema"]["$ref"]
        assert json.loads(referenced.read_text()) == SCHEMAS[name]


def test_the_asyncapi_document_names_the_headers_key_and_guarantees() -> None:
    document = _asyncapi()
    trait = document["components"]["messageTraits"]["envelope"]
    envelope = decode(encode(to_envelope("identity", 1, _registered_event())))
    header_schema = document["components"]["schemas"]["EnvelopeHeaders"]
    assert list(HEADERS) == [name for name, _ in headers(envelope)]
    assert sorted(header_schema["properties"]) == sorted(HEADERS)
    assert sorted(header_schema["required"]) == sorted(HEADERS)
    assert trait["headers"] == {"$ref": "#/components/schemas/EnvelopeHeaders"}
    assert trait["bindings"]["kafka"]["key"]["format"] == "uuid"
    description = document["info"]["description"]
    for phrase in ("Ordering per aggregate", "At least once", "deduplicate on `event_id`"):
        assert phrase in description
    retention = {
        channel["bindings"]["kafka"]["topicConfiguration"]["retention.ms"]
        for channel in document["channels"].values()
    }
    assert retention == {7 * 24 * 3600 * 1000}


def _registered_event() -> Any:
    account = Account.register(
        email="bob@example.com", password_hash=HASH, actor="bob", correlation_id="corr-3"
    )
    (event,) = account.collect_events()
    return event
