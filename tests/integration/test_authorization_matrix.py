"""Every route of the app, for every kind of caller: allowed or refused exactly by the rules.

The routes are enumerated from the app `api.app.create_app` builds (every handler, its methods,
path and operationId), and compared both ways with the matrix below: a route added without a
row fails `test_every_route_has_a_row_and_every_row_a_route`. Each row says, for each of ten
actors, what the rules (commands/policy.py, docs/api.md) give, written out by hand and never
computed with ``commands.policy.decide``:

- ``ok``: allowed, and the call's exact outcome (tests/integration/matrix_calls.py) is checked:
  the answer, every event appended in every log (the audit log too) and the objects stored. For
  a call the state refuses although the caller may make it (a catalog read of something in no
  index), that outcome is the exact refusal.
- ``401``: no valid token (``unauthenticated``, ``WWW-Authenticate: Bearer``).
- ``403``: refused by the access policy (``forbidden``).
- ``401s``: Stripe's webhook with a signature that is not Stripe's (``webhook_rejected``,
  ``WWW-Authenticate: Stripe-Signature``): it is authenticated by its signature, not by a token.

No route answers 404 for someone else's resource: the rules refuse it with 403 (docs/api.md:
another customer's cart is 403 at once), so no cell says 404.

Every refusal is a problem+json that appends nothing to any log and stores nothing. The module
has an event store of its own (no relay or projection reads it) and a private bucket of its own,
so both checks compare everything, not just what carries the request's correlation id.

What is public, by decision: health, the API's documents (OpenAPI, Swagger, Scalar, the zip
manifest's schema), the catalog reads, registration and login (they ignore any token), and
Litestar's automatic OPTIONS answers (`test_options_answers_each_paths_methods_to_everyone`).
``/metrics`` (its OPTIONS too) opens to its own token only, configured here as in production,
never to an access token.

The actors: ``customer`` and ``contributor`` own the resources of their kind that a case sets
up, ``other_*`` are the same roles on someone else's; ``denyall`` is a blocked account that
holds every other role and owns the resources too (only the block refuses it); ``service`` is a
service account (``service:payments``, role ``service``), whose work goes through the command
bus, never through these routes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from api.app import create_app
from commands.policy import Actor
from infra.bootstrap import Container
from infra.settings import Settings
from tests.faults.harness import scratch_container
from tests.integration.matrix_calls import (
    BUILDERS,
    Call,
    Logs,
    Who,
    World,
    stripe_signature,
    world_for,
)
from tests.support import appended_since, drop_scratch_bucket, log_heads, object_keys

Client = TestClient[Litestar]

ACTORS = (
    "anonymous",
    "customer",
    "other_customer",
    "contributor",
    "other_contributor",
    "auditor",
    "admin",
    "superadmin",
    "denyall",
    "service",
)
ROLES: dict[str, frozenset[str]] = {
    "customer": frozenset({"customer"}),
    "other_customer": frozenset({"customer"}),
    "contributor": frozenset({"contributor"}),
    "other_contributor": frozenset({"contributor"}),
    "auditor": frozenset({"auditor"}),
    "admin": frozenset({"admin"}),
    "superadmin": frozenset({"superadmin"}),
    "denyall": frozenset(
        {"denyall", "customer", "contributor", "auditor", "admin", "superadmin", "service"}
    ),
    "service": frozenset({"service"}),
}
OK = "ok"
REFUSALS = {
    "401s": (401, "webhook_rejected"),
    "401": (401, "unauthenticated"),
    "403": (403, "forbidden"),
}

# The rows' cells, one per actor in the order of ACTORS.
# fmt: off
#                    anon cust cus2 cont con2 audi admn supr deny serv
PUBLIC =            "ok   ok   ok   ok   ok   ok   ok   ok   ok   ok"
MEMBERS =           "401  ok   ok   ok   ok   ok   ok   ok   403  403"
SIGNED_IN =         "401  ok   ok   ok   ok   ok   ok   ok   ok   ok"
ADMINS =            "401  403  403  403  403  403  ok   ok   403  403"
CONTRIBUTORS =      "401  403  403  ok   ok   403  ok   ok   403  403"
CONTRIBUTOR_OWNER = "401  403  403  ok   403  403  ok   ok   403  403"
CUSTOMERS =         "401  ok   ok   403  403  403  ok   ok   403  403"
CUSTOMER_OWNER =    "401  ok   403  403  403  403  ok   ok   403  403"
AUDITORS =          "401  403  403  403  403  ok   ok   ok   403  403"
METRICS_TOKEN =     "401  401  401  401  401  401  401  401  401  401"
STRIPE_SIGNED =     "401s 401s 401s 401s 401s 401s 401s 401s 401s 401s"
# fmt: on

# One row per operation, named by its operationId (or "METHOD path" when it has none).
MATRIX_ROWS: dict[str, str] = {
    # Health, metrics, documents.
    "getLiveness": PUBLIC,
    "getReadiness": PUBLIC,  # details (latencies, errors) only for unblocked admins
    "GET /metrics": METRICS_TOKEN,
    "GET /schema": PUBLIC,
    "GET /schema/swagger": PUBLIC,
    "GET /schema/scalar": PUBLIC,
    "GET /schema/openapi.json": PUBLIC,
    "GET /schema/oauth2-redirect.html": PUBLIC,
    "GET /schema/{path:str}": PUBLIC,  # a documentation page that does not exist: 404
    "getImportManifestSchema": PUBLIC,
    # Accounts and tokens: registration and login ignore the token they may carry.
    "registerAccount": PUBLIC,
    "issueToken": PUBLIC,
    "getMe": MEMBERS,  # any member reads their own account; service accounts are no members
    "logout": SIGNED_IN,  # ending one's own session never needs a role, even when blocked
    "changeRoles": ADMINS,
    # Catalog management: contributors, on their own families, sets and icons.
    "createFamily": CONTRIBUTORS,
    "updateFamily": CONTRIBUTOR_OWNER,
    "publishFamily": CONTRIBUTOR_OWNER,
    "unpublishFamily": CONTRIBUTOR_OWNER,
    "createIconSet": CONTRIBUTOR_OWNER,  # into one's own family
    "updateIconSet": CONTRIBUTOR_OWNER,
    "publishIconSet": CONTRIBUTOR_OWNER,
    "unpublishIconSet": CONTRIBUTOR_OWNER,
    "createIcon": CONTRIBUTOR_OWNER,  # into one's own set
    "updateIcon": CONTRIBUTOR_OWNER,
    "changeIconPrice": CONTRIBUTOR_OWNER,
    "changeIconLicence": CONTRIBUTOR_OWNER,
    "publishIcon": CONTRIBUTOR_OWNER,
    "unpublishIcon": CONTRIBUTOR_OWNER,
    "retireIcon": CONTRIBUTOR_OWNER,
    # Media: the icon's or the set's owner.
    "uploadIconSvg": CONTRIBUTOR_OWNER,
    "createIconSvgUpload": CONTRIBUTOR_OWNER,
    "completeIconSvgUpload": CONTRIBUTOR_OWNER,
    "importIconZip": CONTRIBUTOR_OWNER,
    "getImport": CONTRIBUTOR_OWNER,  # another's import is 403, like any other resource
    "getIconMedia": CONTRIBUTOR_OWNER,  # render state, a quarantine included: owner's eyes only
    # Public catalog reads.
    "searchIcons": PUBLIC,
    "suggestIcons": PUBLIC,
    "getIcon": PUBLIC,
    "listFamilies": PUBLIC,
    "getFamily": PUBLIC,
    "listSets": PUBLIC,
    "getSet": PUBLIC,
    # Carts and orders: customers, on their own.
    "getCart": CUSTOMER_OWNER,
    "getMyCart": CUSTOMERS,  # the caller's own
    "openCart": CUSTOMERS,
    "addToCart": CUSTOMER_OWNER,
    "removeFromCart": CUSTOMER_OWNER,
    "clearCart": CUSTOMER_OWNER,
    "checkOut": CUSTOMER_OWNER,
    "cancelOrder": CUSTOMER_OWNER,
    "payOrder": CUSTOMER_OWNER,
    "refundOrder": ADMINS,  # not even the order's customer
    "stripeWebhook": STRIPE_SIGNED,
    # The caller's own library: favourites, downloads, and their read models.
    "addFavourite": CUSTOMERS,
    "removeFavourite": CUSTOMERS,
    "myFavourites": CUSTOMERS,
    "myOrders": CUSTOMERS,
    "myLibrary": CUSTOMERS,
    "downloadIcon": CUSTOMERS,  # a free icon's rendering; a paid one needs an entitlement
    # Audit: auditors and administrators read the event store.
    "auditAggregateEvents": AUDITORS,
    "auditAggregateState": AUDITORS,
    "auditLog": AUDITORS,
}
MATRIX: dict[str, dict[str, str]] = {
    operation: dict(zip(ACTORS, row.split(), strict=True)) for operation, row in MATRIX_ROWS.items()
}

# Whose resource an operation is on: a case's customer (or contributor) and denyall own it, the
# others do not. Operations not named here are on no one's resource or on the caller's own.
OWNED_BY: dict[str, str] = {
    **dict.fromkeys(
        [
            "updateFamily",
            "publishFamily",
            "unpublishFamily",
            "createIconSet",
            "updateIconSet",
            "publishIconSet",
            "unpublishIconSet",
            "createIcon",
            "updateIcon",
            "changeIconPrice",
            "changeIconLicence",
            "publishIcon",
            "unpublishIcon",
            "retireIcon",
            "uploadIconSvg",
            "createIconSvgUpload",
            "completeIconSvgUpload",
            "importIconZip",
            "getImport",
            "getIconMedia",
        ],
        "contributor",
    ),
    **dict.fromkeys(
        [
            "getCart",
            "addToCart",
            "removeFromCart",
            "clearCart",
            "checkOut",
            "cancelOrder",
            "payOrder",
            "refundOrder",
        ],
        "customer",
    ),
}

CASES = [
    pytest.param(operation, actor, id=f"{operation}-{actor}")
    for operation in MATRIX
    for actor in ACTORS
]


@dataclasses.dataclass(frozen=True)
class Operation:
    """One method of one route handler, as the app serves it."""

    method: str
    path: str
    operation_id: str | None = None

    @property
    def names(self) -> frozenset[str]:
        """What a row may call it: its operationId or "METHOD path" (so that giving a route an
        operationId later does not orphan its row)."""
        named = {self.operation_id} if self.operation_id else set()
        return frozenset({f"{self.method} {self.path}", *named})

    def serves(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", self.path)
        return method == self.method and re.fullmatch(pattern, path.partition("?")[0]) is not None


def _automatic(handler: Any) -> bool:
    """Litestar's own OPTIONS answer, which it adds to every path."""
    return bool(handler.fn.__qualname__.endswith("create_options_handler.<locals>.options_handler"))


def operations(app: Litestar) -> tuple[list[Operation], dict[str, set[str]]]:
    """Every operation the app serves (a route that is not plain HTTP by its kind and path, so
    that it needs a row too), and each path's methods for the automatic OPTIONS answers."""
    found: list[Operation] = []
    options: dict[str, set[str]] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            found.append(Operation(type(route).__name__, route.path))
            continue
        for handler in route.route_handlers:
            named = handler.operation_id if isinstance(handler.operation_id, str) else None
            for method in sorted(handler.http_methods):
                if method == "OPTIONS" and _automatic(handler):
                    options[route.path] = set(route.methods)
                    continue
                one = named if len(handler.http_methods) == 1 else None
                found.append(Operation(method, route.path, one))
    return found, options


def rows_of(app: Litestar) -> dict[str, Operation]:
    """Each row's operation (a row names it by operationId or by "METHOD path")."""
    return {name: op for op in operations(app)[0] for name in op.names if name in MATRIX}


def unmatched(app: Litestar) -> tuple[set[str], set[str]]:
    """(operations the app serves that have no row, rows for operations it does not serve)."""
    served = operations(app)[0]
    missing = {
        op.operation_id or f"{op.method} {op.path}" for op in served if not op.names & set(MATRIX)
    }
    return missing, set(MATRIX) - set(rows_of(app))


@pytest.fixture(scope="module")
def container(settings: Settings) -> Iterator[Container]:
    bucket = f"iconmarket-test-matrix-{uuid.uuid4().hex[:12]}"
    own = dataclasses.replace(
        settings, s3_bucket_private=bucket, metrics_token=f"matrix-metrics-{uuid.uuid4().hex}"
    )
    with scratch_container(own, "iconmarket_matrix") as built:
        built.s3.create_bucket(Bucket=bucket)
        try:
            yield built
        finally:
            drop_scratch_bucket(built.s3, bucket)


@pytest.fixture(scope="module")
def client(container: Container) -> Iterator[Client]:
    with TestClient(create_app(container)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def world(container: Container) -> World:
    return world_for(container, f"shop-{uuid.uuid4().hex[:8]}")


@dataclasses.dataclass
class Bench:
    """What every case uses: the client, its app's container, the world, the app's operations,
    and per operation the call every refused actor shares (a refusal changes nothing, so they
    can share what it is about: resources of the module's own customer or contributor)."""

    client: Client
    container: Container
    world: World
    routes: dict[str, Operation]
    shared: dict[str, Call] = dataclasses.field(default_factory=dict)


@pytest.fixture(scope="module")
def bench(client: Client, container: Container, world: World) -> Bench:
    return Bench(client, container, world, rows_of(client.app))


def _caller(actor: str) -> Actor | None:
    if actor == "anonymous":
        return None
    if actor == "service":
        return Actor("service:payments", ROLES[actor])
    return Actor(f"{actor}-{uuid.uuid4().hex[:10]}", ROLES[actor])


def _headers(container: Container, caller: Actor | None, correlation_id: str) -> dict[str, str]:
    headers = {"X-Correlation-ID": correlation_id}
    if caller is not None:
        headers["Authorization"] = f"Bearer {container.tokens.issue(caller).access_token}"
    return headers


def _assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    if status == 401:
        scheme = "Stripe-Signature" if code == "webhook_rejected" else "Bearer"
        assert response.headers["www-authenticate"] == f'{scheme} realm="iconmarket"'


def _call_for(bench: Bench, operation: str, actor: str) -> tuple[Call, Actor | None]:
    """The case's call: on a fresh resource when it is allowed (it changes state) or when the
    caller owns it; else the one all refused actors share."""
    caller = _caller(actor)
    kind = OWNED_BY.get(operation)
    owns = caller is not None and kind is not None and actor in (kind, "denyall")
    build = BUILDERS[operation]
    if MATRIX[operation][actor] == OK or owns:
        if owns or kind is None:
            owner = caller.id if caller else f"anonymous-{uuid.uuid4().hex[:10]}"
        else:
            owner = f"{kind}-owner-{uuid.uuid4().hex[:10]}"
        return build(bench.world, Who(owner, caller)), caller
    if operation in bench.shared:
        return bench.shared[operation], caller
    call = build(bench.world, Who(f"{kind or 'nobody'}-shared-{bench.world.shop.owner}", None))
    if call.forget is None:
        bench.shared[operation] = call
    return call, caller


def _assert_allowed(call: Call, response: Any, appended: list[Any]) -> None:
    """The exact outcome of an allowed call: its answer and every event it appended."""
    target = call.target
    if call.answer is None:
        assert response.status_code == call.status, response.text
        body = response.json()
        target = target or uuid.UUID(body["id"])
        assert body == {
            "id": str(target),
            "version": call.version,
            "position": max(a.position for a in appended),
        }
        assert response.headers["etag"] == f'"{call.version}"'
    else:
        call.answer(response, appended)
    assert sorted((a.context, a.name, a.version) for a in appended) == sorted(
        (context, name, version) for context, name, _, version in call.events
    )
    named = {(c, n, oid or target, v) for c, n, oid, v in call.events if (oid or target)}
    assert named <= {(a.context, a.name, a.originator_id, a.version) for a in appended}


@pytest.mark.parametrize(("operation", "actor"), CASES)
def test_route_access(bench: Bench, operation: str, actor: str) -> None:
    call, caller = _call_for(bench, operation, actor)
    assert bench.routes[operation].serves(call.method, call.path), (call.method, call.path)
    client, container = bench.client, bench.container
    logs = Logs(container)
    bucket = container.settings.s3_bucket_private
    heads = log_heads(logs)
    stored = object_keys(container.s3, bucket)
    correlation_id = f"authz-{uuid.uuid4().hex}"

    try:
        response = client.request(
            call.method,
            call.path,
            json=call.body,
            content=call.content,
            headers={**call.headers, **_headers(container, caller, correlation_id)},
            follow_redirects=False,
        )
    finally:
        if call.forget is not None:
            call.forget()

    appended = appended_since(logs, heads, None)
    now_stored = object_keys(container.s3, bucket)
    cell = MATRIX[operation][actor]
    if cell != OK:
        _assert_problem(response, *REFUSALS[cell])
        assert appended == []
        assert now_stored == stored
        return
    _assert_allowed(call, response, appended)
    assert {a.name for a in appended} == {
        a.name for a in appended_since(logs, heads, correlation_id)
    }
    assert (now_stored - stored, stored - now_stored) == (set(call.stored), set(call.removed))


def test_every_route_has_a_row_and_every_row_a_route(client: Client) -> None:
    assert unmatched(client.app) == (set(), set())
    served = operations(client.app)[0]
    assert [op for op in served if len(op.names & set(MATRIX)) > 1] == []  # one row each
    assert set(MATRIX) == set(BUILDERS)
    assert len(CASES) == len(MATRIX) * len(ACTORS)


def test_a_route_added_without_a_row_is_caught(container: Container) -> None:
    """The check above on a test-only app with one more route: it names the new operation."""

    @get("/v1/unlisted", operation_id="unlistedOperation", sync_to_thread=False)
    def unlisted() -> None:
        return None

    @get(["/v1/unnamed"], sync_to_thread=False)
    def unnamed() -> None:
        return None

    app = create_app(container)
    app.register(unlisted)
    app.register(unnamed)

    assert unmatched(app) == ({"unlistedOperation", "GET /v1/unnamed"}, set())


def _example(path: str) -> str:
    return re.sub(
        r"\{[^}:]+:([a-z]+)\}",
        lambda m: str(uuid.uuid4()) if m.group(1) == "uuid" else "icon",
        path,
    )


def test_options_answers_each_paths_methods_to_everyone(
    client: Client, container: Container
) -> None:
    """Litestar's automatic OPTIONS is public: 204 and the path's methods, whoever asks; but
    /metrics's, which its guard covers too, answers only its token (401 to every actor)."""
    logs = Logs(container)
    heads = log_heads(logs)
    paths = operations(client.app)[1]
    assert len(paths) == len({operation.path for operation in operations(client.app)[0]})
    for path, methods in paths.items():
        for actor in ACTORS:
            headers = _headers(container, _caller(actor), f"authz-{uuid.uuid4().hex}")
            response = client.options(_example(path), headers=headers)
            if path == "/metrics":
                _assert_problem(response, 401, "unauthenticated")
                continue
            assert response.status_code == 204, (path, actor, response.text)
            # Litestar lists only the methods of the path's first handler (GET is missing from
            # "/v1/families", DELETE from "/v1/carts/{id}/lines"...): a contract matter.
            allowed = set(response.headers["allow"].split(", "))
            assert "OPTIONS" in allowed, path
            assert allowed <= methods, path
    assert appended_since(logs, heads, None) == []


def test_metrics_open_to_the_metrics_token_only(client: Client, container: Container) -> None:
    token = container.settings.metrics_token
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert b"iconmarket_" in response.content


def test_a_signed_webhook_needs_no_token_and_a_token_changes_nothing(
    client: Client, container: Container
) -> None:
    """Stripe's signature is the webhook's authentication: an event the service does not act on
    is acknowledged as ignored, with no token and with a blocked account's alike."""
    logs = Logs(container)
    secret = container.settings.stripe_webhook_secret
    for caller in (None, _caller("denyall")):
        heads = log_heads(logs)
        event_id = f"evt_{uuid.uuid4().hex}"
        body = json.dumps(
            {"id": event_id, "object": "event", "type": "customer.created", "data": {"object": {}}}
        ).encode()
        headers = {
            **_headers(container, caller, f"authz-{uuid.uuid4().hex}"),
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_signature(body, secret),
        }

        response = client.post("/v1/webhooks/stripe", content=body, headers=headers)

        assert response.status_code == 200, response.text
        assert response.json() == {
            "event_id": event_id,
            "type": "customer.created",
            "outcome": "ignored",
            "position": None,
        }
        assert appended_since(logs, heads, None) == []
