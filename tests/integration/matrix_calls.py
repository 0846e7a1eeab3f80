"""One call per API operation for the authorization matrix (tests/integration/
test_authorization_matrix.py), and the world it sets up.

A builder gets the world and `Who`: the owner of what it sets up (the caller itself when the
caller is the owner, or for the operations on the caller's own things) and the caller. It
returns the request and the exact outcome of that request when it is allowed: the answer, the
events appended (in every log, the audit log included) and the objects stored. The matrix says
for each operation and actor whether the request is allowed (then this outcome is checked) or
refused (then a problem, nothing appended, nothing stored).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx

from commands import messages as m
from commands.applications import ContextApplication
from commands.bus import CommandBus
from commands.policy import Actor
from commands.unit_of_work import UnitOfWork
from domain.account import Account
from domain.icon_import import import_id_for
from domain.library import Library
from domain.order import Order
from domain.transaction import Transaction
from infra.bootstrap import Container
from pipelines.import_batch import staged_zip_key
from pipelines.zip_import import MANIFEST_SCHEMA_PATH
from projections.cart_view import RedisCartView
from projections.carts import apply as cart_writes
from projections.catalog import apply as catalog_writes
from projections.catalog import icon_doc_id
from projections.catalog_alias import ensure_live_index
from projections.catalog_view import OpenSearchCatalogView
from projections.keyspace import live_prefix
from stream.envelope import to_envelope
from tests.support import Appended, Catalog, ctx, published_catalog, record_media

NEW = None  # in an expected event: the aggregate the call creates (a command: the id it answers)
Event = tuple[str, str, UUID | None, int]
Answer = Callable[[Any, list[Appended]], None]
PASSWORD = "correct horse battery"
SERVICE = ctx("service:payments", "service")


@dataclass(frozen=True)
class Who:
    """Whose things a call is about, and who makes it (None: no token)."""

    owner: str
    caller: Actor | None


@dataclass(frozen=True)
class Call:
    """One request and its exact outcome when it is allowed.

    Without ``answer`` the request is a command: it answers ``status`` with ``{id, version,
    position}`` of ``target`` (NEW: the id the answer names) and an ETag. With ``answer``, that
    function checks the response and what was appended. ``events`` are every event the call
    appends (an id of NEW: the command's target, or any id for a call with ``answer``);
    ``stored`` and ``removed`` the private bucket's keys it adds and deletes.
    """

    method: str
    path: str
    events: tuple[Event, ...] = ()
    target: UUID | None = NEW
    version: int = 1
    status: int = 202
    body: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    answer: Answer | None = None
    stored: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    forget: Callable[[], None] | None = None
    """Undoes what the setup wrote outside the module's own store (then the call is never
    shared: each case sets up its own and undoes it right after)."""


class Logs:
    """Every log an API call may append to: the three contexts' and the audit log."""

    def __init__(self, container: Container) -> None:
        self._apps = (*container.applications.all(), container.audit_application)

    def all(self) -> tuple[ContextApplication, ...]:
        return self._apps


def svg_document(n: int) -> tuple[bytes, bytes]:
    """An SVG of its own (``n`` sets the square's size) and the form the sanitiser stores."""
    raw = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
        f'<rect width="{n}" height="{n}"/></svg>'
    ).encode()
    stored = (
        f'<svg xmlns="http://www.w3.org/2000/svg" height="24" viewBox="0 0 24 24" width="24">'
        f'<rect height="{n}" width="{n}"/></svg>\n'
    ).encode()
    return raw, stored


def original_key(stored: bytes) -> str:
    return f"originals/{hashlib.sha256(stored).hexdigest()}.svg"


def zip_batch(file: str, raw: bytes) -> bytes:
    """A zip batch of one SVG ``file`` named "glyph", priced 250 USD minor units."""
    icons = [{"file": file, "name": "glyph", "price": {"amount_minor": 250, "currency": "USD"}}]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps({"version": 1, "icons": icons}))
        archive.writestr(file, raw)
    return buffer.getvalue()


def _unique() -> int:
    return 1 + uuid.uuid4().int % 10**9


@dataclass
class World:
    """Fresh aggregates, made through the command bus of the module's container."""

    container: Container
    shop: Catalog

    @property
    def bus(self) -> CommandBus:
        return self.container.bus

    @property
    def for_sale(self) -> UUID:
        return self.shop.icon_ids[0]

    @property
    def free(self) -> UUID:
        return self.shop.icon_ids[1]

    def family(self, owner: str, *, published: bool = False) -> UUID:
        who = ctx(owner, "contributor")
        family_id = self.bus.execute(m.CreateFamily(name="Weather"), who).aggregate_id
        if published:
            self.bus.execute(m.PublishFamily(family_id=family_id), who)
        return family_id

    def icon_set(self, owner: str, *, published: bool = False) -> UUID:
        who = ctx(owner, "contributor")
        set_id = self.bus.execute(
            m.CreateIconSet(family_id=self.family(owner), name="Weather Line", style="line"), who
        ).aggregate_id
        if published:
            self.bus.execute(m.PublishIconSet(set_id=set_id), who)
        return set_id

    def icon(self, owner: str, *, rendered: bool = False, published: bool = False) -> UUID:
        who = ctx(owner, "contributor")
        icon_id = self.bus.execute(
            m.CreateIcon(
                set_id=self.icon_set(owner),
                name="cloud",
                price=m.Money(amount_minor=300, currency="USD"),
            ),
            who,
        ).aggregate_id
        if rendered or published:
            record_media(self.bus, icon_id, who)
        if published:
            self.bus.execute(m.PublishIcon(icon_id=icon_id), who)
        return icon_id

    def cart(self, owner: str, *, line: UUID | None = None) -> UUID:
        who = ctx(owner, "customer")
        cart_id = self.bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
        if line is not None:
            self.bus.execute(
                m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=line), who
            )
        return cart_id

    def order(self, owner: str, *, icon_id: UUID | None = None) -> UUID:
        cart_id = self.cart(owner, line=icon_id or self.for_sale)
        return self.bus.execute(m.CheckOut(cart_id=cart_id), ctx(owner, "customer")).aggregate_id

    def paid_order(self, owner: str) -> tuple[UUID, UUID]:
        """An order paid through Stripe (stripe-mock) and settled: (order id, transaction id)."""
        order_id = self.order(owner)
        paying = self.container.payments.pay(order_id, ctx(owner, "customer"))
        assert paying.transaction_id is not None
        assert paying.provider_reference is not None
        self.bus.execute(
            m.SettlePayment(
                transaction_id=paying.transaction_id,
                provider_reference=paying.provider_reference,
                captured=m.Money(amount_minor=500, currency="USD"),
            ),
            SERVICE,
        )
        return order_id, paying.transaction_id

    def favourite(self, owner: str) -> None:
        self.bus.execute(m.AddFavourite(icon_id=self.for_sale), ctx(owner, "customer"))

    def account(self) -> UUID:
        command = m.RegisterAccount(
            email=f"matrix-{uuid.uuid4().hex}@example.com", password=PASSWORD
        )
        return self.bus.execute(command, ctx("anonymous")).aggregate_id

    @functools.cached_property
    def login(self) -> tuple[str, UUID]:
        """An account to log in to: (its e-mail, its id); its password is PASSWORD."""
        email = f"matrix-{uuid.uuid4().hex}@example.com"
        command = m.RegisterAccount(email=email, password=PASSWORD)
        return email, self.bus.execute(command, ctx("anonymous")).aggregate_id

    def projected_icon(self, icon_id: UUID, *, since: int) -> Callable[[], None]:
        """The icon's events after position ``since`` projected into the live catalog index as
        the projection would (no projection reads this module's store); returns what takes it
        out again."""
        catalog = self.container.applications.catalog
        envelopes = [
            to_envelope("catalog", n.id, event)
            for n in catalog.recorder.select_notifications(since + 1, limit=1_000)
            if (event := catalog.mapper.to_domain_event(n)).originator_id == icon_id
        ]
        client = self.container.opensearch
        index = ensure_live_index(client)
        OpenSearchCatalogView(client, index).apply(
            [w for e in envelopes for w in catalog_writes(e)]
        )
        client.indices.refresh(index=index)

        def forget() -> None:
            client.delete(index=index, id=icon_doc_id(str(icon_id)), refresh=True)

        return forget

    def projected_cart(self, owner: str) -> tuple[dict[str, Any], Callable[[], None]]:
        """A cart with one line, projected into the live cart view as the projection would (no
        projection reads this module's store): the document a read must answer, and what takes
        it out of the shared view again (call it as soon as the read is done)."""
        commerce = self.container.applications.commerce
        head = commerce.recorder.max_notification_id() or 0
        cart_id = self.cart(owner, line=self.for_sale)
        envelopes = [
            to_envelope("commerce", n.id, event)
            for n in commerce.recorder.select_notifications(head + 1, limit=100)
            if (event := commerce.mapper.to_domain_event(n)).originator_id == cart_id
        ]
        redis = self.container.redis
        view = RedisCartView(redis, prefix=live_prefix(redis, "carts"))
        view.apply([w for e in envelopes for w in cart_writes(e)])

        def forget() -> None:
            redis.delete(view.key(str(cart_id)), view.customer_carts(owner))
            redis.zrem(view.idle_key(), str(cart_id))

        price = {"amount_minor": 500, "currency": "USD"}
        document = {
            "id": str(cart_id),
            "owner_id": owner,
            "currency": "USD",
            "status": "open",
            "opened_at": envelopes[0].occurred_at,
            "lines": [
                {
                    "product_kind": "icon",
                    "product_id": str(self.for_sale),
                    "unit_price": price,
                    "licence": "standard",
                }
            ],
            "total": price,
            "version": 2,
            "position": envelopes[-1].position,
        }
        return document, forget

    def staged_upload(self, owner: str) -> tuple[UUID, str, bytes]:
        """An icon with an SVG posted to its presigned upload: (icon id, upload id, stored form)."""
        icon_id = self.icon(owner)
        ticket = self.container.svg_ingestion.presign(icon_id, ctx(owner, "contributor"))
        raw, stored = svg_document(_unique())
        form = httpx.post(
            ticket.url, data=ticket.fields, files={"file": ("icon.svg", raw, "image/svg+xml")}
        )
        assert form.status_code == 204, form.text
        return icon_id, ticket.upload_id, stored

    def imported(self, owner: str) -> tuple[UUID, UUID, UUID]:
        """A set with a zip batch of one icon imported: (set id, import id, icon id)."""
        set_id = self.icon_set(owner)
        raw, _ = svg_document(_unique())
        zipped = zip_batch("glyph.svg", raw)
        outcome = self.container.zip_importer.run(set_id, zipped, ctx(owner, "contributor"))
        [created] = outcome.report.created
        return set_id, outcome.report.id, UUID(created["icon_id"])


def _json(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _names(appended: list[Appended]) -> list[tuple[str, str, int]]:
    return sorted((a.context, a.name, a.version) for a in appended)


def _position(appended: list[Appended], context: str) -> int:
    return max(a.position for a in appended if a.context == context)


# Health, metrics and the API's documents: public.


def _liveness(w: World, who: Who) -> Call:
    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 200) == {"status": "ok"}

    return Call("GET", "/health/live", answer=answer)


READINESS_DEPENDENCIES = [
    "postgres",
    "redis",
    "kafka",
    "opensearch",
    "s3",
    "stripe",
    "smtp",
    "command_writer:catalog",
    "command_writer:commerce",
    "command_writer:identity",
]


def _readiness(w: World, who: Who) -> Call:
    """Up or down per dependency for everyone; latencies (and errors) only for an admin's token
    that is not blocked. The stack may be disturbed by other tests meanwhile: whatever it says
    for each dependency, the status code follows it."""
    roles = who.caller.roles if who.caller else frozenset()
    details = bool(roles & {"admin", "superadmin"}) and "denyall" not in roles

    def answer(response: Any, appended: list[Appended]) -> None:
        body = response.json()
        assert response.status_code == (503 if body["down"] else 200), response.text
        assert body["status"] == ("down" if body["down"] else "ready")
        assert [d["name"] for d in body["dependencies"]] == READINESS_DEPENDENCIES
        for dependency in body["dependencies"]:
            keys = {"name", "status"}
            if details:
                keys |= {"latency_ms"} | ({"error"} if dependency["status"] == "down" else set())
            assert set(dependency) == keys, dependency

    return Call("GET", "/health/ready", answer=answer)


def _metrics(w: World, who: Who) -> Call:
    def answer(response: Any, appended: list[Appended]) -> None:
        raise AssertionError("no actor's access token opens /metrics, only the metrics token")

    return Call("GET", "/metrics", answer=answer)


def _page(path: str, media_type: str, marker: bytes) -> Callable[[World, Who], Call]:
    def build(w: World, who: Who) -> Call:
        def answer(response: Any, appended: list[Appended]) -> None:
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == media_type
            assert marker in response.content

        return Call("GET", path, answer=answer)

    return build


def _schema_not_found(w: World, who: Who) -> Call:
    """A documentation page that does not exist: a 404 problem like any other."""

    def answer(response: Any, appended: list[Appended]) -> None:
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"

    return Call("GET", "/schema/no-such-page", answer=answer)


def _manifest_schema(w: World, who: Who) -> Call:
    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 200) == json.loads(MANIFEST_SCHEMA_PATH.read_text())

    return Call("GET", "/v1/schemas/import-manifest.json", answer=answer)


# Accounts and tokens.


def _register(w: World, who: Who) -> Call:
    """Registration runs as "anonymous" whatever token comes with it, and answers 202 with one
    body whether or not the address had an account (docs/api.md, Authentication)."""
    email = f"matrix-{uuid.uuid4().hex}@example.com"
    account_id = Account.create_id(email)

    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 202) == {
            "status": "accepted",
            "detail": "If this address had no account, it has one now; an account it had is "
            "unchanged. Sign in with POST /v1/auth/token.",
        }

    return Call(
        "POST",
        "/v1/auth/register",
        (("identity", "Account.Registered", account_id, 1),),
        target=account_id,
        body={"email": email, "password": PASSWORD, "roles": ["customer"]},
        answer=answer,
    )


def _issue_token(w: World, who: Who) -> Call:
    """A login to the module's account (a login changes nothing, so every case may share it)."""
    email, account_id = w.login

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 200)
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 900)
        tokens = w.container.tokens
        assert tokens.verify(body["access_token"]) == Actor(
            str(account_id), frozenset({"customer"})
        )
        refresh = tokens.verify(body["refresh_token"], kind="refresh")
        assert refresh == Actor(str(account_id), frozenset({"customer"}))

    return Call(
        "POST", "/v1/auth/token", body={"email": email, "password": PASSWORD}, answer=answer
    )


def _get_me(w: World, who: Who) -> Call:
    def answer(response: Any, appended: list[Appended]) -> None:
        caller = who.caller
        assert caller is not None
        assert _json(response, 200) == {"id": caller.id, "roles": sorted(caller.roles)}

    return Call("GET", "/v1/auth/me", answer=answer)


def _logout(w: World, who: Who) -> Call:
    """The actors' tokens are minted without a session, so a logout ends none and changes
    nothing (tests/integration/test_sessions.py logs real sessions out)."""

    def answer(response: Any, appended: list[Appended]) -> None:
        assert (response.status_code, response.content) == (204, b""), response.text
        assert appended == []

    return Call("POST", "/v1/auth/logout", answer=answer)


def _change_roles(w: World, who: Who) -> Call:
    account_id = w.account()
    return Call(
        "PUT",
        f"/v1/accounts/{account_id}/roles",
        (("identity", "Account.RolesChanged", account_id, 2),),
        target=account_id,
        version=2,
        body={"roles": ["customer", "contributor"]},
    )


# Catalog commands (contributors' own families, sets and icons).


def _create_family(w: World, who: Who) -> Call:
    return Call(
        "POST",
        "/v1/families",
        (("catalog", "Family.Created", NEW, 1),),
        status=201,
        body={"name": "Maps", "tags": ["geo"]},
    )


def _update_family(w: World, who: Who) -> Call:
    family_id = w.family(who.owner)
    return Call(
        "PATCH",
        f"/v1/families/{family_id}",
        (("catalog", "Family.DetailsUpdated", family_id, 2),),
        target=family_id,
        version=2,
        body={"name": "Weather 2", "description": "rain and sun"},
    )


def _publish_family(w: World, who: Who) -> Call:
    family_id = w.family(who.owner)
    return Call(
        "POST",
        f"/v1/families/{family_id}/publish",
        (("catalog", "Family.Published", family_id, 2),),
        target=family_id,
        version=2,
    )


def _unpublish_family(w: World, who: Who) -> Call:
    family_id = w.family(who.owner, published=True)
    return Call(
        "POST",
        f"/v1/families/{family_id}/unpublish",
        (("catalog", "Family.Unpublished", family_id, 3),),
        target=family_id,
        version=3,
    )


def _create_icon_set(w: World, who: Who) -> Call:
    family_id = w.family(who.owner)
    return Call(
        "POST",
        f"/v1/families/{family_id}/sets",
        (("catalog", "IconSet.Created", NEW, 1),),
        status=201,
        body={"name": "Weather Solid", "style": "solid"},
    )


def _update_icon_set(w: World, who: Who) -> Call:
    set_id = w.icon_set(who.owner)
    return Call(
        "PATCH",
        f"/v1/sets/{set_id}",
        (("catalog", "IconSet.Renamed", set_id, 2),),
        target=set_id,
        version=2,
        body={"name": "Weather Thin"},
    )


def _publish_icon_set(w: World, who: Who) -> Call:
    set_id = w.icon_set(who.owner)
    return Call(
        "POST",
        f"/v1/sets/{set_id}/publish",
        (("catalog", "IconSet.Published", set_id, 2),),
        target=set_id,
        version=2,
    )


def _unpublish_icon_set(w: World, who: Who) -> Call:
    set_id = w.icon_set(who.owner, published=True)
    return Call(
        "POST",
        f"/v1/sets/{set_id}/unpublish",
        (("catalog", "IconSet.Unpublished", set_id, 3),),
        target=set_id,
        version=3,
    )


def _create_icon(w: World, who: Who) -> Call:
    set_id = w.icon_set(who.owner)
    return Call(
        "POST",
        f"/v1/sets/{set_id}/icons",
        (("catalog", "IconSet.IconAdded", set_id, 2), ("catalog", "Icon.Created", NEW, 1)),
        status=201,
        body={"name": "sun", "price": {"amount_minor": 250, "currency": "USD"}},
    )


def _update_icon(w: World, who: Who) -> Call:
    icon_id = w.icon(who.owner)
    return Call(
        "PATCH",
        f"/v1/icons/{icon_id}",
        (("catalog", "Icon.DetailsUpdated", icon_id, 2),),
        target=icon_id,
        version=2,
        body={"name": "cloud rain", "tags": ["rain"]},
    )


def _change_icon_price(w: World, who: Who) -> Call:
    icon_id = w.icon(who.owner)
    return Call(
        "PUT",
        f"/v1/icons/{icon_id}/price",
        (("catalog", "Icon.PriceChanged", icon_id, 2),),
        target=icon_id,
        version=2,
        body={"price": {"amount_minor": 450, "currency": "USD"}},
    )


def _change_icon_licence(w: World, who: Who) -> Call:
    icon_id = w.icon(who.owner)
    return Call(
        "PUT",
        f"/v1/icons/{icon_id}/licence",
        (("catalog", "Icon.LicenceChanged", icon_id, 2),),
        target=icon_id,
        version=2,
        body={"licence": "extended"},
    )


def _publish_icon(w: World, who: Who) -> Call:
    icon_id = w.icon(who.owner, rendered=True)
    return Call(
        "POST",
        f"/v1/icons/{icon_id}/publish",
        (("catalog", "Icon.Published", icon_id, 4),),
        target=icon_id,
        version=4,
    )


def _unpublish_icon(w: World, who: Who) -> Call:
    icon_id = w.icon(who.owner, published=True)
    return Call(
        "POST",
        f"/v1/icons/{icon_id}/unpublish",
        (("catalog", "Icon.Unpublished", icon_id, 5),),
        target=icon_id,
        version=5,
    )


def _retire_icon(w: World, who: Who) -> Call:
    icon_id = w.icon(who.owner)
    return Call(
        "POST",
        f"/v1/icons/{icon_id}/retire",
        (("catalog", "Icon.Retired", icon_id, 2),),
        target=icon_id,
        version=2,
    )


# Media: uploads and zip imports (the icon's or the set's owner).


def _svg_accepted(icon_id: UUID, stored: bytes) -> Answer:
    def answer(response: Any, appended: list[Appended]) -> None:
        digest = hashlib.sha256(stored).hexdigest()
        assert _json(response, 202) == {
            "id": str(icon_id),
            "version": 2,
            "position": _position(appended, "catalog"),
            "key": original_key(stored),
            "content_hash": digest,
            "size_bytes": len(stored),
            "width": 24,
            "height": 24,
        }
        assert response.headers["etag"] == '"2"'

    return answer


def _upload_svg(w: World, who: Who) -> Call:
    icon_id = w.icon(who.owner)
    raw, stored = svg_document(_unique())
    return Call(
        "PUT",
        f"/v1/icons/{icon_id}/svg",
        (("catalog", "Icon.OriginalRecorded", icon_id, 2),),
        content=raw,
        headers={"Content-Type": "image/svg+xml"},
        answer=_svg_accepted(icon_id, stored),
        stored=frozenset({original_key(stored)}),
    )


def _create_svg_upload(w: World, who: Who) -> Call:
    """A signed form upload to a staging key: it appends and stores nothing itself."""
    icon_id = w.icon(who.owner)
    settings = w.container.settings

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 201)
        upload_id = body["upload_id"]
        assert re.fullmatch("[0-9a-f]{32}", upload_id), upload_id
        fields = body["fields"]
        assert (fields["key"], fields["Content-Type"]) == (
            f"incoming/{icon_id}/{upload_id}.svg",
            "image/svg+xml",
        )
        assert {k: v for k, v in body.items() if k not in {"upload_id", "fields"}} == {
            "url": f"{settings.s3_endpoint}/{settings.s3_bucket_private}",
            "method": "POST",
            "content_type": "image/svg+xml",
            "max_bytes": settings.svg_max_bytes,
            "expires_in_s": settings.upload_url_ttl_s,
            "complete_url": f"/v1/icons/{icon_id}/svg/uploads/{upload_id}/complete",
        }

    return Call("POST", f"/v1/icons/{icon_id}/svg/uploads", answer=answer)


def _complete_svg_upload(w: World, who: Who) -> Call:
    icon_id, upload_id, stored = w.staged_upload(who.owner)
    return Call(
        "POST",
        f"/v1/icons/{icon_id}/svg/uploads/{upload_id}/complete",
        (("catalog", "Icon.OriginalRecorded", icon_id, 2),),
        answer=_svg_accepted(icon_id, stored),
        stored=frozenset({original_key(stored)}),
        removed=frozenset({f"incoming/{icon_id}/{upload_id}.svg"}),
    )


def _import_zip(w: World, who: Who) -> Call:
    set_id = w.icon_set(who.owner)
    raw, _ = svg_document(_unique())
    zipped = zip_batch("glyph.svg", raw)
    import_id = import_id_for(set_id, hashlib.sha256(zipped).hexdigest(), "")

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 202)
        assert response.headers["location"] == f"/v1/imports/{import_id}"
        assert body == {
            "id": str(import_id),
            "set_id": str(set_id),
            "status": "pending",
            "zip_hash": hashlib.sha256(zipped).hexdigest(),
            "size_bytes": len(zipped),
            "version": 1,
            "position": _position(appended, "catalog"),
        }

    # The request records the import and stages the zip; the import worker creates the icons.
    return Call(
        "POST",
        f"/v1/sets/{set_id}/imports",
        (("catalog", "IconImport.ImportRequested", import_id, 1),),
        content=zipped,
        headers={"Content-Type": "application/zip"},
        answer=answer,
        stored=frozenset({staged_zip_key(import_id)}),
    )


def _get_import(w: World, who: Who) -> Call:
    set_id, import_id, icon_id = w.imported(who.owner)
    catalog = w.container.applications.catalog

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 200)
        assert body == {
            "id": str(import_id),
            "set_id": str(set_id),
            "zip_hash": body["zip_hash"],
            "version": 2,
            "position": catalog.recorder.max_notification_id(),
            "status": "done",
            "created": [{"file": "glyph.svg", "icon_id": str(icon_id)}],
            "rejected": [],
            "render_refused": [],
            "refusal": None,
        }

    return Call("GET", f"/v1/imports/{import_id}", answer=answer)


def _icon_media(w: World, who: Who) -> Call:
    """The owner's view of a draft icon, projected into the live catalog index for the call."""
    head = w.container.applications.catalog.recorder.max_notification_id() or 0
    icon_id = w.icon(who.owner)
    forget = w.projected_icon(icon_id, since=head)
    set_id = w.container.applications.catalog.repository.get(icon_id).set_id

    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 200) == {
            "id": str(icon_id),
            "set_id": str(set_id),
            "status": "draft",
            "formats": [],
            "render": {
                "state": "none",
                "code": None,
                "detail": None,
                "source_hash": None,
                "renderer_version": None,
            },
        }
        assert response.headers["cache-control"] == "private, no-store"

    return Call("GET", f"/v1/icons/{icon_id}/media", answer=answer, forget=forget)


# Public catalog reads: this module's catalog is in no index (nothing projects its store), so
# each read asks for what is surely not there, and everyone gets the same exact answer.

NOWHERE = UUID("00000000-0000-4000-8000-00000000ab1e")


def _not_in_catalog(kind: str, path: str, of: Callable[[Catalog], UUID]) -> Builder:
    def build(w: World, who: Who) -> Call:
        aggregate_id = of(w.shop)

        def answer(response: Any, appended: list[Appended]) -> None:
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "not_found"
            assert response.json()["detail"] == f"{kind} {aggregate_id} is not in the catalog"

        return Call("GET", f"{path}/{aggregate_id}", answer=answer)

    return build


def _search(w: World, who: Who) -> Call:
    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 200) == {
            "hits": [],
            "facets": {
                "style": {},
                "category": {},
                "tag": {},
                "family": {},
                "set": {},
                "licence": {},
                "price": {"free": 0, "paid": 0},
                "price_band": {"free": 0, "under-5": 0, "5-10": 0, "10-plus": 0},
            },
            "total": 0,
            "next_cursor": None,
        }
        assert response.headers["cache-control"] == "public, max-age=30, stale-while-revalidate=60"

    return Call("GET", f"/v1/icons/search?q=cloud&family={NOWHERE}", answer=answer)


def _suggest(w: World, who: Who) -> Call:
    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 200) == {"suggestions": []}

    return Call("GET", f"/v1/icons/suggest?prefix=zq{uuid.uuid4().hex[:12]}", answer=answer)


def _list_families(w: World, who: Who) -> Call:
    """The shared index's published families: whatever they are, a list for everyone."""

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 200)
        assert list(body) == ["families", "total", "next_cursor"]
        assert isinstance(body["families"], list)
        assert body["total"] == len(body["families"]) or body["next_cursor"] is not None

    return Call("GET", "/v1/families", answer=answer)


def _list_sets(w: World, who: Who) -> Call:
    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 200) == {"sets": [], "total": 0, "next_cursor": None}

    return Call("GET", f"/v1/sets?family={w.shop.family_id}", answer=answer)


# Carts, orders, favourites and the caller's own read models (customers).


def _get_cart(w: World, who: Who) -> Call:
    document, forget = w.projected_cart(who.owner)

    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 200) == document
        assert response.headers["x-projection-position"] == str(document["position"])

    return Call("GET", f"/v1/carts/{document['id']}", answer=answer, forget=forget)


def _get_my_cart(w: World, who: Who) -> Call:
    document, forget = w.projected_cart(who.owner)

    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 200) == document

    return Call("GET", "/v1/carts/me", answer=answer, forget=forget)


def _open_cart(w: World, who: Who) -> Call:
    return Call(
        "POST",
        "/v1/carts",
        (("commerce", "Cart.Opened", NEW, 1),),
        status=201,
        body={"currency": "USD"},
    )


def _add_to_cart(w: World, who: Who) -> Call:
    cart_id = w.cart(who.owner)
    return Call(
        "POST",
        f"/v1/carts/{cart_id}/lines",
        (("commerce", "Cart.LineAdded", cart_id, 2),),
        target=cart_id,
        version=2,
        body={"product_kind": "icon", "product_id": str(w.for_sale)},
    )


def _remove_from_cart(w: World, who: Who) -> Call:
    cart_id = w.cart(who.owner, line=w.for_sale)
    return Call(
        "DELETE",
        f"/v1/carts/{cart_id}/lines/icon/{w.for_sale}",
        (("commerce", "Cart.LineRemoved", cart_id, 3),),
        target=cart_id,
        version=3,
    )


def _clear_cart(w: World, who: Who) -> Call:
    cart_id = w.cart(who.owner, line=w.for_sale)
    return Call(
        "DELETE",
        f"/v1/carts/{cart_id}/lines",
        (("commerce", "Cart.Cleared", cart_id, 3),),
        target=cart_id,
        version=3,
    )


def _check_out(w: World, who: Who) -> Call:
    cart_id = w.cart(who.owner, line=w.for_sale)
    order_id = Order.create_id(cart_id)
    return Call(
        "POST",
        f"/v1/carts/{cart_id}/checkout",
        (
            ("commerce", "Cart.CheckedOut", cart_id, 3),
            ("commerce", "Order.Placed", order_id, 1),
        ),
        target=order_id,
        version=1,
        status=201,
    )


def _cancel_order(w: World, who: Who) -> Call:
    order_id = w.order(who.owner)
    return Call(
        "POST",
        f"/v1/orders/{order_id}/cancel",
        (("commerce", "Order.Cancelled", order_id, 2),),
        target=order_id,
        version=2,
        body={"reason": "changed my mind"},
    )


def _pay_order(w: World, who: Who) -> Call:
    """A free order: paying it completes it at once (Stripe is not called) and grants the
    icon in its customer's library, whoever pays."""
    order_id = w.order(who.owner, icon_id=w.free)
    library_id = Library.create_id(who.owner)

    def answer(response: Any, appended: list[Appended]) -> None:
        assert _json(response, 201) == {
            "order_id": str(order_id),
            "transaction_id": None,
            "status": "fulfilled",
            "amount": {"amount_minor": 0, "currency": "USD"},
            "client_secret": None,
            "position": _position(appended, "commerce"),
        }
        owners = {a.name: a.originator_id for a in appended}
        assert owners["Order.Paid"] == order_id
        assert owners["Library.EntitlementsGranted"] == library_id

    return Call(
        "POST",
        f"/v1/orders/{order_id}/payments",
        (
            ("commerce", "Order.Paid", order_id, 2),
            ("commerce", "Order.Fulfilled", order_id, 3),
            ("commerce", "Library.Opened", library_id, 1),
            ("commerce", "Library.EntitlementsGranted", library_id, 2),
        ),
        answer=answer,
    )


def _refund_order(w: World, who: Who) -> Call:
    order_id, transaction_id = w.paid_order(who.owner)
    library_id = Library.create_id(who.owner)

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 202)
        assert body["refund_id"].startswith("re_")
        assert body == {
            "order_id": str(order_id),
            "transaction_id": str(transaction_id),
            "refund_id": body["refund_id"],
            "position": _position(appended, "commerce"),
        }

    return Call(
        "POST",
        f"/v1/orders/{order_id}/refund",
        (
            ("commerce", "Transaction.Refunded", transaction_id, 4),
            ("commerce", "Order.Refunded", order_id, 5),
            ("commerce", "Library.EntitlementsRevoked", library_id, 3),
        ),
        body={"reason": "goodwill"},
        answer=answer,
    )


def stripe_signature(body: bytes, secret: str) -> str:
    """Stripe's scheme: ``t=…,v1=`` HMAC-SHA256 of ``"{t}.{body}"`` with the webhook secret."""
    t = int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _stripe_webhook(w: World, who: Who) -> Call:
    """A payment success for a real attempt, signed with a secret that is not the webhook's:
    no one's access token stands in for Stripe's signature."""
    order_id, transaction_id = w.paid_order(who.owner)
    transaction = UnitOfWork.read(w.container.applications.commerce, Transaction, transaction_id)
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": transaction.provider_reference,
                "object": "payment_intent",
                "amount": 500,
                "amount_received": 500,
                "currency": "usd",
                "metadata": {"transaction_id": str(transaction_id), "order_id": str(order_id)},
            }
        },
    }

    def answer(response: Any, appended: list[Appended]) -> None:
        raise AssertionError("an unsigned webhook is never applied")

    body = json.dumps(event).encode()
    return Call(
        "POST",
        "/v1/webhooks/stripe",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_signature(body, "whsec_not_the_webhook_secret"),
        },
        answer=answer,
    )


def _add_favourite(w: World, who: Who) -> Call:
    library_id = Library.create_id(who.owner)
    return Call(
        "PUT",
        f"/v1/me/favourites/{w.for_sale}",
        (
            ("commerce", "Library.Opened", library_id, 1),
            ("commerce", "Library.FavouriteAdded", library_id, 2),
        ),
        target=library_id,
        version=2,
    )


def _remove_favourite(w: World, who: Who) -> Call:
    w.favourite(who.owner)
    library_id = Library.create_id(who.owner)
    return Call(
        "DELETE",
        f"/v1/me/favourites/{w.for_sale}",
        (("commerce", "Library.FavouriteRemoved", library_id, 3),),
        target=library_id,
        version=3,
    )


def _own(path: str, document: Callable[[str], dict[str, Any]]) -> Callable[[World, Who], Call]:
    """A read of the caller's own customer document (nothing projected: an empty one)."""

    def build(w: World, who: Who) -> Call:
        def answer(response: Any, appended: list[Appended]) -> None:
            assert _json(response, 200) == document(who.owner)
            assert response.headers["x-projection-position"] == "0"

        return Call("GET", path, answer=answer)

    return build


def _no_orders(customer: str) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "orders": [],
        "position": 0,
        **FIRST_EMPTY_PAGE,
    }


FIRST_EMPTY_PAGE = {"total": 0, "offset": 0, "limit": 50, "next_offset": None}


def _empty_library(customer: str) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "entitlements": [],
        "downloads": {},
        "version": 0,
        "position": 0,
        **FIRST_EMPTY_PAGE,
    }


def _no_favourites(customer: str) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "icon_ids": [],
        "version": 0,
        "position": 0,
        **FIRST_EMPTY_PAGE,
    }


def _download(w: World, who: Who) -> Call:
    """A free published icon's PNG: recorded in the caller's own library, then a redirect."""
    library_id = Library.create_id(who.owner)
    settings = w.container.settings

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 302)
        location = response.headers["location"]
        assert location.startswith(f"{settings.s3_endpoint}/{settings.s3_bucket_private}/d/")
        assert body == {
            "url": location,
            "expires_in_s": settings.download_url_ttl_s,
            "format": "png",
            "size": 64,
            "size_bytes": 900,
            "position": _position(appended, "commerce"),
        }
        assert response.headers["cache-control"] == "no-store"

    return Call(
        "GET",
        f"/v1/icons/{w.free}/download?format=png",
        (
            ("commerce", "Library.Opened", library_id, 1),
            ("commerce", "Library.DownloadRecorded", library_id, 2),
        ),
        answer=answer,
    )


# Audit reads (auditors and administrators): each one is recorded in the audit log first.

AUDIT_READ: tuple[Event, ...] = (("audit", "AuditAccess.Recorded", NEW, 1),)


def _audit_events(w: World, who: Who) -> Call:
    family_id = w.shop.family_id

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 200)
        events = [(e["type"], e["aggregate_version"]) for e in body["events"]]
        assert events == [("Family.Created", 1), ("Family.Published", 2)]
        assert (body["aggregate_id"], body["context"]) == (str(family_id), "catalog")
        assert body["next_after_version"] is None

    return Call("GET", f"/v1/audit/aggregates/{family_id}/events", AUDIT_READ, answer=answer)


def _audit_state(w: World, who: Who) -> Call:
    family_id = w.shop.family_id

    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 200)
        created = body["state"]["created_on"]
        assert body == {
            "aggregate_id": str(family_id),
            "context": "catalog",
            "aggregate_type": "Family",
            "version": 1,
            "head_version": 2,
            "at": None,
            "state": {
                "categories": [],
                "created_on": created,
                "description": "",
                "id": str(family_id),
                "modified_on": created,
                "name": "Arrows",
                "owner_id": w.shop.owner,
                "preview": None,
                "status": "draft",
                "tags": ["ui"],
                "version": 1,
            },
        }

    return Call(
        "GET", f"/v1/audit/aggregates/{family_id}/state?version=1", AUDIT_READ, answer=answer
    )


def _audit_log(w: World, who: Who) -> Call:
    def answer(response: Any, appended: list[Appended]) -> None:
        body = _json(response, 200)
        rows = [(e["type"], e["aggregate_id"], e["actor"]) for e in body["events"]]
        assert rows == [("Family.Published", str(w.shop.family_id), w.shop.owner)]
        assert body["more"] is False

    return Call(
        "GET",
        f"/v1/audit/log?context=catalog&actor={w.shop.owner}&type=Family.Published",
        AUDIT_READ,
        answer=answer,
    )


Builder = Callable[[World, Who], Call]

BUILDERS: dict[str, Builder] = {
    "getLiveness": _liveness,
    "getReadiness": _readiness,
    "GET /metrics": _metrics,
    "GET /schema": _page("/schema", "text/html; charset=utf-8", b"swagger-ui"),
    "GET /schema/swagger": _page("/schema/swagger", "text/html; charset=utf-8", b"swagger-ui"),
    "GET /schema/scalar": _page("/schema/scalar", "text/html; charset=utf-8", b"scalar"),
    "GET /schema/openapi.json": _page(
        "/schema/openapi.json", "application/vnd.oai.openapi+json", b'"operationId"'
    ),
    "GET /schema/oauth2-redirect.html": _page(
        "/schema/oauth2-redirect.html", "text/html; charset=utf-8", b"oauth2"
    ),
    "GET /schema/{path:str}": _schema_not_found,
    "getImportManifestSchema": _manifest_schema,
    "registerAccount": _register,
    "issueToken": _issue_token,
    "getMe": _get_me,
    "logout": _logout,
    "changeRoles": _change_roles,
    "createFamily": _create_family,
    "updateFamily": _update_family,
    "publishFamily": _publish_family,
    "unpublishFamily": _unpublish_family,
    "createIconSet": _create_icon_set,
    "updateIconSet": _update_icon_set,
    "publishIconSet": _publish_icon_set,
    "unpublishIconSet": _unpublish_icon_set,
    "createIcon": _create_icon,
    "updateIcon": _update_icon,
    "changeIconPrice": _change_icon_price,
    "changeIconLicence": _change_icon_licence,
    "publishIcon": _publish_icon,
    "unpublishIcon": _unpublish_icon,
    "retireIcon": _retire_icon,
    "uploadIconSvg": _upload_svg,
    "createIconSvgUpload": _create_svg_upload,
    "completeIconSvgUpload": _complete_svg_upload,
    "importIconZip": _import_zip,
    "getImport": _get_import,
    "getIconMedia": _icon_media,
    "searchIcons": _search,
    "suggestIcons": _suggest,
    "getIcon": _not_in_catalog("icon", "/v1/icons", lambda shop: shop.icon_ids[0]),
    "listFamilies": _list_families,
    "getFamily": _not_in_catalog("family", "/v1/families", lambda shop: shop.family_id),
    "listSets": _list_sets,
    "getSet": _not_in_catalog("set", "/v1/sets", lambda shop: shop.set_id),
    "getCart": _get_cart,
    "getMyCart": _get_my_cart,
    "openCart": _open_cart,
    "addToCart": _add_to_cart,
    "removeFromCart": _remove_from_cart,
    "clearCart": _clear_cart,
    "checkOut": _check_out,
    "cancelOrder": _cancel_order,
    "payOrder": _pay_order,
    "refundOrder": _refund_order,
    "stripeWebhook": _stripe_webhook,
    "addFavourite": _add_favourite,
    "removeFavourite": _remove_favourite,
    "myFavourites": _own("/v1/me/favourites", _no_favourites),
    "myOrders": _own("/v1/me/orders", _no_orders),
    "myLibrary": _own("/v1/me/library", _empty_library),
    "downloadIcon": _download,
    "auditAggregateEvents": _audit_events,
    "auditAggregateState": _audit_state,
    "auditLog": _audit_log,
}


def world_for(container: Container, shop_owner: str) -> World:
    return World(container, published_catalog(container.bus, shop_owner, prices=(500, 0)))
