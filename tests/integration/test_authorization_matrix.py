"""Each command endpoint, for each role, as owner or not: allowed or refused exactly by the rules.

The expectations are written out by hand below (never computed with ``commands.policy.decide``).
Each case sets up fresh aggregates on the real PostgreSQL store through the command bus, calls the
endpoint with a bearer token, and checks either the exact result and the exact events appended, or
a 403 ``forbidden`` with nothing appended. "Nothing appended" is checked through the events carrying
the request's correlation id (and any event of the aggregates involved), so another process writing
to the same store cannot make it flaky.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from api.app import create_app
from commands import messages as m
from commands.bus import CommandBus
from commands.policy import Actor
from domain.library import Library
from domain.order import Order
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from tests.support import (
    Catalog,
    appended_since,
    ctx,
    log_heads,
    published_catalog,
    record_media,
)

ROLES = ("customer", "contributor", "admin", "superadmin", "auditor", "denyall")
OWNER, OTHER, NONE = "owner", "other", "-"

# Who may call what, by hand from the rules: denyall never; admin and superadmin always; else the
# action's role, and for an existing resource (or the parent a create goes into) only its owner.
EXPECTED_ALLOWED: dict[str, dict[str, frozenset[str]]] = {
    "createFamily": {NONE: frozenset({"contributor", "admin", "superadmin"})},
    "updateFamily": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "publishFamily": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "unpublishFamily": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "createIconSet": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "updateIconSet": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "publishIconSet": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "unpublishIconSet": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "createIcon": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "updateIcon": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "changeIconPrice": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "changeIconLicence": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "publishIcon": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "unpublishIcon": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "retireIcon": {
        OWNER: frozenset({"contributor", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "openCart": {NONE: frozenset({"customer", "admin", "superadmin"})},
    "addToCart": {
        OWNER: frozenset({"customer", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "removeFromCart": {
        OWNER: frozenset({"customer", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "clearCart": {
        OWNER: frozenset({"customer", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "checkOut": {
        OWNER: frozenset({"customer", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    "cancelOrder": {
        OWNER: frozenset({"customer", "admin", "superadmin"}),
        OTHER: frozenset({"admin", "superadmin"}),
    },
    # Favourites always go to the caller's own library: no one else's to touch.
    "addFavourite": {NONE: frozenset({"customer", "admin", "superadmin"})},
    "removeFavourite": {NONE: frozenset({"customer", "admin", "superadmin"})},
    "changeRoles": {NONE: frozenset({"admin", "superadmin"})},
}
ME_ALLOWED = frozenset({"customer", "contributor", "admin", "superadmin", "auditor"})

NEW = None  # in an expected event: the aggregate the call creates (the id its answer names)
Event = tuple[str, str, UUID | None, int]


@dataclass(frozen=True)
class Call:
    """One request and, if it is allowed, its exact outcome."""

    method: str
    path: str
    events: tuple[Event, ...]
    target: UUID | None = NEW
    version: int = 1
    status: int = 202
    body: dict[str, Any] | None = None
    involved: tuple[UUID, ...] = ()

    def watched(self) -> set[UUID]:
        ids = {e[2] for e in self.events if e[2] is not None} | set(self.involved)
        return ids | ({self.target} if self.target else set())


@dataclass
class World:
    """Fresh aggregates, made through the command bus."""

    bus: CommandBus
    shop: Catalog
    made: list[UUID] = field(default_factory=list)

    @property
    def for_sale(self) -> UUID:
        return self.shop.icon_ids[0]

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

    def cart(self, owner: str, *, line: bool = False) -> UUID:
        who = ctx(owner, "customer")
        cart_id = self.bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
        if line:
            self.bus.execute(
                m.AddToCart(cart_id=cart_id, product_kind="icon", product_id=self.for_sale), who
            )
        return cart_id

    def order(self, owner: str) -> UUID:
        cart_id = self.cart(owner, line=True)
        return self.bus.execute(m.CheckOut(cart_id=cart_id), ctx(owner, "customer")).aggregate_id

    def favourite(self, owner: str) -> None:
        self.bus.execute(m.AddFavourite(icon_id=self.for_sale), ctx(owner, "customer"))

    def account(self) -> UUID:
        command = m.RegisterAccount(
            email=f"matrix-{uuid.uuid4().hex}@example.com", password="correct horse battery"
        )
        return self.bus.execute(command, ctx("anonymous")).aggregate_id


# Each builder gets the world and the owner of what it sets up (the caller itself for endpoints
# without an owner dimension) and returns a call that succeeds when it is allowed.
def _create_family(w: World, owner: str) -> Call:
    return Call(
        "POST",
        "/v1/families",
        (("catalog", "Family.Created", NEW, 1),),
        status=201,
        body={"name": "Maps", "tags": ["geo"]},
    )


def _update_family(w: World, owner: str) -> Call:
    family_id = w.family(owner)
    return Call(
        "PATCH",
        f"/v1/families/{family_id}",
        (("catalog", "Family.DetailsUpdated", family_id, 2),),
        target=family_id,
        version=2,
        body={"name": "Weather 2", "description": "rain and sun"},
    )


def _publish_family(w: World, owner: str) -> Call:
    family_id = w.family(owner)
    return Call(
        "POST",
        f"/v1/families/{family_id}/publish",
        (("catalog", "Family.Published", family_id, 2),),
        target=family_id,
        version=2,
    )


def _unpublish_family(w: World, owner: str) -> Call:
    family_id = w.family(owner, published=True)
    return Call(
        "POST",
        f"/v1/families/{family_id}/unpublish",
        (("catalog", "Family.Unpublished", family_id, 3),),
        target=family_id,
        version=3,
    )


def _create_icon_set(w: World, owner: str) -> Call:
    family_id = w.family(owner)
    return Call(
        "POST",
        f"/v1/families/{family_id}/sets",
        (("catalog", "IconSet.Created", NEW, 1),),
        status=201,
        body={"name": "Weather Solid", "style": "solid"},
        involved=(family_id,),
    )


def _update_icon_set(w: World, owner: str) -> Call:
    set_id = w.icon_set(owner)
    return Call(
        "PATCH",
        f"/v1/sets/{set_id}",
        (("catalog", "IconSet.Renamed", set_id, 2),),
        target=set_id,
        version=2,
        body={"name": "Weather Thin"},
    )


def _publish_icon_set(w: World, owner: str) -> Call:
    set_id = w.icon_set(owner)
    return Call(
        "POST",
        f"/v1/sets/{set_id}/publish",
        (("catalog", "IconSet.Published", set_id, 2),),
        target=set_id,
        version=2,
    )


def _unpublish_icon_set(w: World, owner: str) -> Call:
    set_id = w.icon_set(owner, published=True)
    return Call(
        "POST",
        f"/v1/sets/{set_id}/unpublish",
        (("catalog", "IconSet.Unpublished", set_id, 3),),
        target=set_id,
        version=3,
    )


def _create_icon(w: World, owner: str) -> Call:
    set_id = w.icon_set(owner)
    return Call(
        "POST",
        f"/v1/sets/{set_id}/icons",
        (("catalog", "IconSet.IconAdded", set_id, 2), ("catalog", "Icon.Created", NEW, 1)),
        status=201,
        body={"name": "sun", "price": {"amount_minor": 250, "currency": "USD"}},
        involved=(set_id,),
    )


def _update_icon(w: World, owner: str) -> Call:
    icon_id = w.icon(owner)
    return Call(
        "PATCH",
        f"/v1/icons/{icon_id}",
        (("catalog", "Icon.DetailsUpdated", icon_id, 2),),
        target=icon_id,
        version=2,
        body={"name": "cloud rain", "tags": ["rain"]},
    )


def _change_icon_price(w: World, owner: str) -> Call:
    icon_id = w.icon(owner)
    return Call(
        "PUT",
        f"/v1/icons/{icon_id}/price",
        (("catalog", "Icon.PriceChanged", icon_id, 2),),
        target=icon_id,
        version=2,
        body={"price": {"amount_minor": 450, "currency": "USD"}},
    )


def _change_icon_licence(w: World, owner: str) -> Call:
    icon_id = w.icon(owner)
    return Call(
        "PUT",
        f"/v1/icons/{icon_id}/licence",
        (("catalog", "Icon.LicenceChanged", icon_id, 2),),
        target=icon_id,
        version=2,
        body={"licence": "extended"},
    )


def _publish_icon(w: World, owner: str) -> Call:
    icon_id = w.icon(owner, rendered=True)
    return Call(
        "POST",
        f"/v1/icons/{icon_id}/publish",
        (("catalog", "Icon.Published", icon_id, 4),),
        target=icon_id,
        version=4,
    )


def _unpublish_icon(w: World, owner: str) -> Call:
    icon_id = w.icon(owner, published=True)
    return Call(
        "POST",
        f"/v1/icons/{icon_id}/unpublish",
        (("catalog", "Icon.Unpublished", icon_id, 5),),
        target=icon_id,
        version=5,
    )


def _retire_icon(w: World, owner: str) -> Call:
    icon_id = w.icon(owner)
    return Call(
        "POST",
        f"/v1/icons/{icon_id}/retire",
        (("catalog", "Icon.Retired", icon_id, 2),),
        target=icon_id,
        version=2,
    )


def _open_cart(w: World, owner: str) -> Call:
    return Call(
        "POST",
        "/v1/carts",
        (("commerce", "Cart.Opened", NEW, 1),),
        status=201,
        body={"currency": "USD"},
    )


def _add_to_cart(w: World, owner: str) -> Call:
    cart_id = w.cart(owner)
    return Call(
        "POST",
        f"/v1/carts/{cart_id}/lines",
        (("commerce", "Cart.LineAdded", cart_id, 2),),
        target=cart_id,
        version=2,
        body={"product_kind": "icon", "product_id": str(w.for_sale)},
    )


def _remove_from_cart(w: World, owner: str) -> Call:
    cart_id = w.cart(owner, line=True)
    return Call(
        "DELETE",
        f"/v1/carts/{cart_id}/lines/icon/{w.for_sale}",
        (("commerce", "Cart.LineRemoved", cart_id, 3),),
        target=cart_id,
        version=3,
    )


def _clear_cart(w: World, owner: str) -> Call:
    cart_id = w.cart(owner, line=True)
    return Call(
        "DELETE",
        f"/v1/carts/{cart_id}/lines",
        (("commerce", "Cart.Cleared", cart_id, 3),),
        target=cart_id,
        version=3,
    )


def _check_out(w: World, owner: str) -> Call:
    cart_id = w.cart(owner, line=True)
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


def _cancel_order(w: World, owner: str) -> Call:
    order_id = w.order(owner)
    return Call(
        "POST",
        f"/v1/orders/{order_id}/cancel",
        (("commerce", "Order.Cancelled", order_id, 2),),
        target=order_id,
        version=2,
        body={"reason": "changed my mind"},
    )


def _add_favourite(w: World, caller: str) -> Call:
    library_id = Library.create_id(caller)
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


def _remove_favourite(w: World, caller: str) -> Call:
    w.favourite(caller)
    library_id = Library.create_id(caller)
    return Call(
        "DELETE",
        f"/v1/me/favourites/{w.for_sale}",
        (("commerce", "Library.FavouriteRemoved", library_id, 3),),
        target=library_id,
        version=3,
    )


def _change_roles(w: World, caller: str) -> Call:
    account_id = w.account()
    return Call(
        "PUT",
        f"/v1/accounts/{account_id}/roles",
        (("identity", "Account.RolesChanged", account_id, 2),),
        target=account_id,
        version=2,
        body={"roles": ["customer", "contributor"]},
    )


BUILDERS: dict[str, Callable[[World, str], Call]] = {
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
    "openCart": _open_cart,
    "addToCart": _add_to_cart,
    "removeFromCart": _remove_from_cart,
    "clearCart": _clear_cart,
    "checkOut": _check_out,
    "cancelOrder": _cancel_order,
    "addFavourite": _add_favourite,
    "removeFavourite": _remove_favourite,
    "changeRoles": _change_roles,
}


@dataclass(frozen=True)
class Case:
    operation: str
    role: str
    ownership: str
    allowed: bool


def _cases() -> list[Any]:
    cases = []
    for operation, by_ownership in EXPECTED_ALLOWED.items():
        for ownership, allowed in by_ownership.items():
            for role in ROLES:
                case_id = f"{operation}-{role}" + ("" if ownership == NONE else f"-{ownership}")
                case = Case(operation, role, ownership, role in allowed)
                cases.append(pytest.param(case, id=case_id))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(settings)
    yield built
    built.close()


@pytest.fixture(scope="module")
def client(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(container)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def world(container: Container) -> World:
    shop = published_catalog(container.bus, f"shop-{uuid.uuid4().hex[:8]}", prices=(500,))
    return World(container.bus, shop)


def _bearer(container: Container, actor_id: str, role: str) -> str:
    pair = container.tokens.issue(Actor(actor_id, frozenset({role})))
    return f"Bearer {pair.access_token}"


def _assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    return body


@pytest.mark.parametrize("case", CASES)
def test_command_endpoint_access(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    world: World,
    case: Case,
) -> None:
    caller = f"{case.role}-{uuid.uuid4().hex[:10]}"
    owner = f"someone-else-{uuid.uuid4().hex[:10]}" if case.ownership == OTHER else caller
    call = BUILDERS[case.operation](world, owner)
    correlation_id = f"authz-{uuid.uuid4().hex}"
    apps = container.applications
    heads = log_heads(apps)

    response = client.request(
        call.method,
        call.path,
        json=call.body,
        headers={
            "Authorization": _bearer(container, caller, case.role),
            "X-Correlation-ID": correlation_id,
        },
    )

    if not case.allowed:
        body = _assert_problem(response, 403, "forbidden")
        assert body["title"] == "Forbidden"
        assert appended_since(apps, heads, correlation_id, call.watched()) == []
        return
    assert response.status_code == call.status, response.text
    body = response.json()
    target = call.target or UUID(body["id"])
    appended = appended_since(apps, heads, correlation_id, call.watched() | {target})
    expected = [(c, name, oid or target, version) for c, name, oid, version in call.events]
    assert sorted((a.context, a.name, a.originator_id, a.version) for a in appended) == sorted(
        expected
    )
    assert body == {
        "id": str(target),
        "version": call.version,
        "position": max(a.position for a in appended),
    }
    assert response.headers["etag"] == f'"{call.version}"'


@pytest.mark.parametrize("role", ROLES)
def test_get_me(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    role: str,
) -> None:
    caller = f"{role}-{uuid.uuid4().hex[:10]}"
    response = client.get(
        "/v1/auth/me", headers={"Authorization": _bearer(container, caller, role)}
    )

    if role in ME_ALLOWED:
        assert response.status_code == 200, response.text
        assert response.json() == {"id": caller, "roles": [role]}
    else:
        _assert_problem(response, 403, "forbidden")


UNAUTHENTICATED_SAMPLE = [
    "createFamily",
    "publishFamily",
    "createIconSet",
    "publishIcon",
    "openCart",
    "checkOut",
    "cancelOrder",
    "addFavourite",
    "changeRoles",
]


@pytest.mark.parametrize("operation", UNAUTHENTICATED_SAMPLE)
def test_no_token_is_401_and_appends_nothing(
    client: TestClient,  # type: ignore[type-arg]
    container: Container,
    world: World,
    operation: str,
) -> None:
    call = BUILDERS[operation](world, f"owner-{uuid.uuid4().hex[:10]}")
    correlation_id = f"authz-{uuid.uuid4().hex}"
    apps = container.applications
    heads = log_heads(apps)

    response = client.request(
        call.method, call.path, json=call.body, headers={"X-Correlation-ID": correlation_id}
    )

    body = _assert_problem(response, 401, "unauthenticated")
    assert body["detail"] == "a valid access token is required"
    assert response.headers["www-authenticate"] == 'Bearer realm="iconmarket"'
    assert appended_since(apps, heads, correlation_id, call.watched()) == []


def test_get_me_without_a_token_is_401(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/v1/auth/me")

    body = _assert_problem(response, 401, "unauthenticated")
    assert body["detail"] == "a valid access token is required"
    assert response.headers["www-authenticate"] == 'Bearer realm="iconmarket"'


def test_the_matrix_covers_every_command_endpoint() -> None:
    assert set(EXPECTED_ALLOWED) == set(BUILDERS)
    assert len(CASES) == 5 * 6 + 19 * 2 * 6
