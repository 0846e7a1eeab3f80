"""Rate limits against the real app and the real Redis: each budget lets exactly its quota
through, then answers 429 ``rate_limited`` with Retry-After and the RateLimit fields, and a
refused request runs nothing (nothing appended). Budgets are per address and per account, and
drawing on one budget leaves the others alone.

Every test has budgets of its own: small quotas and a key prefix no other test or run uses.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from api.app import create_app
from commands.policy import Actor
from domain.account import Account
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from tests.support import appended_since, log_heads

pytestmark = pytest.mark.integration

Client = TestClient  # type: ignore[type-arg]
ROOMY = "1000/minute"
"""A quota no test reaches, for the budgets a test is not about."""
_RATELIMIT = re.compile(r'^"(?P<name>[a-z0-9-]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


@contextmanager
def limited(settings: Settings, **budgets: str) -> Iterator[tuple[Client, Container]]:
    """The app with ``budgets`` (``auth_per_ip="3/minute"``...), every other budget roomy, on
    a key prefix of its own."""
    values = {f"rate_limit_{b}_per_{p}": ROOMY for b in BUDGETS for p in ("ip", "account")}
    values.update({f"rate_limit_{name}": quota for name, quota in budgets.items()})
    own = dataclasses.replace(
        settings, rate_limit_prefix=f"test-rl-{uuid.uuid4().hex[:12]}", **values
    )
    container = bootstrap(own)
    try:
        with TestClient(create_app(container)) as client:
            yield client, container
    finally:
        container.close()


BUDGETS = ("auth", "commands", "uploads", "reads")


def _bearer(container: Container, *roles: str, actor: str | None = None) -> dict[str, str]:
    who = Actor(actor or f"rl-{uuid.uuid4().hex[:10]}", frozenset(roles))
    return {"Authorization": f"Bearer {container.tokens.issue(who).access_token}"}


def _fields(response: Any) -> dict[str, tuple[int, int]]:
    """The RateLimit field's items: policy name -> (remaining, seconds until reset)."""
    items = {}
    for item in response.headers["ratelimit"].split(", "):
        match = _RATELIMIT.match(item)
        assert match, item
        items[match["name"]] = (int(match["r"]), int(match["t"]))
    return items


def _assert_allowed(response: Any, policy: str, quota: int, remaining: int) -> None:
    assert response.status_code != 429, response.text
    assert f'"{policy}";q={quota};w=60' in response.headers["ratelimit-policy"].split(", ")
    left, reset_in = _fields(response)[policy]
    assert left == remaining
    assert 1 <= reset_in <= 60


def _assert_refused(response: Any, policy: str, quota: int, what: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {k: body[k] for k in ("status", "code", "title", "policy")} == {
        "status": 429,
        "code": "rate_limited",
        "title": "Too Many Requests",
        "policy": policy,
    }
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert body["detail"] == f"too many {what}; retry in {retry_after} s"
    assert f'"{policy}";q={quota};w=60' in response.headers["ratelimit-policy"]
    assert _fields(response)[policy][0] == 0


def _login(client: Client, headers: dict[str, str] | None = None) -> Any:
    body = {"email": f"rl-{uuid.uuid4().hex}@example.com", "password": "not a real password"}
    return client.post("/v1/auth/token", json=body, headers=headers or {})


def test_the_auth_budget_per_address_allows_exactly_its_quota(settings: Settings) -> None:
    with limited(settings, auth_per_ip="3/minute") as (client, container):
        answers = [_login(client) for _ in range(3)]
        for spent, response in enumerate(answers, start=1):
            assert response.status_code == 401, response.text
            _assert_allowed(response, "auth-ip", 3, 3 - spent)

        email = f"rl-{uuid.uuid4().hex}@example.com"
        correlation_id = f"rl-{uuid.uuid4().hex}"
        heads = log_heads(container.applications)
        refused = client.post(
            "/v1/auth/register",
            json={"email": email, "password": "a long enough password"},
            headers={"X-Correlation-ID": correlation_id},
        )

        _assert_refused(refused, "auth-ip", 3, "auth requests from this address")
        watched = {Account.create_id(email)}
        assert appended_since(container.applications, heads, correlation_id, watched) == []
        assert _login(client).status_code == 429
        # Other budgets are untouched: a command still goes through.
        family = client.post(
            "/v1/families", json={"name": "Still"}, headers=_bearer(container, "contributor")
        )
        assert family.status_code == 201, family.text


def test_the_auth_budget_per_account_counts_the_token_s_subject(settings: Settings) -> None:
    with limited(settings, auth_per_account="2/minute") as (client, container):
        ada = _bearer(container, "customer")
        for spent in (1, 2):
            response = _login(client, ada)
            assert response.status_code == 401
            _assert_allowed(response, "auth-account", 2, 2 - spent)

        _assert_refused(_login(client, ada), "auth-account", 2, "auth requests from this account")
        # Another account on the same address has its own budget; no token, only the address's,
        # which the refusal did not draw on: 1000 less Ada's two, the other's and this one.
        assert _login(client, _bearer(container, "customer")).status_code == 401
        anonymous = _login(client)
        assert anonymous.status_code == 401
        assert {name: left for name, (left, _) in _fields(anonymous).items()} == {"auth-ip": 996}


def test_the_commands_budget_per_address_refuses_the_next_command_and_appends_nothing(
    settings: Settings,
) -> None:
    with limited(settings, commands_per_ip="3/minute") as (client, container):
        for spent in (1, 2, 3):
            # A new account each time: only the address's budget is drawn on to its end.
            response = client.post(
                "/v1/families", json={"name": "Maps"}, headers=_bearer(container, "contributor")
            )
            assert response.status_code == 201, response.text
            _assert_allowed(response, "commands-ip", 3, 3 - spent)

        correlation_id = f"rl-{uuid.uuid4().hex}"
        heads = log_heads(container.applications)
        refused = client.post(
            "/v1/families",
            json={"name": "One too many"},
            headers={**_bearer(container, "contributor"), "X-Correlation-ID": correlation_id},
        )

        _assert_refused(refused, "commands-ip", 3, "commands requests from this address")
        assert appended_since(container.applications, heads, correlation_id) == []
        # The auth budget is another one.
        assert _login(client).status_code == 401


def test_the_commands_budget_per_account_leaves_other_accounts_alone(settings: Settings) -> None:
    with limited(settings, commands_per_account="2/minute") as (client, container):
        grace = _bearer(container, "contributor")
        for spent in (1, 2):
            response = client.post("/v1/families", json={"name": "Maps"}, headers=grace)
            assert response.status_code == 201, response.text
            _assert_allowed(response, "commands-account", 2, 2 - spent)
            assert set(_fields(response)) == {"commands-ip", "commands-account"}

        refused = client.post("/v1/families", json={"name": "Maps"}, headers=grace)
        _assert_refused(refused, "commands-account", 2, "commands requests from this account")
        other = client.post(
            "/v1/families", json={"name": "Maps"}, headers=_bearer(container, "contributor")
        )
        assert other.status_code == 201, other.text


def _upload_calls(icon_id: UUID, set_id: UUID) -> list[tuple[str, str, dict[str, Any]]]:
    svg = {"content": b"<svg xmlns='http://www.w3.org/2000/svg'/>"}
    return [
        ("PUT", f"/v1/icons/{icon_id}/svg", {**svg, "headers": {"Content-Type": "image/svg+xml"}}),
        ("POST", f"/v1/icons/{icon_id}/svg/uploads", {}),
        ("POST", f"/v1/icons/{icon_id}/svg/uploads/abc/complete", {}),
        (
            "POST",
            f"/v1/sets/{set_id}/imports",
            {"content": b"PK", "headers": {"Content-Type": "application/zip"}},
        ),
    ]


def test_the_uploads_budget_covers_svg_uploads_and_zip_imports(settings: Settings) -> None:
    """Each of the four upload routes draws on the uploads budget (none on commands): four
    calls of unknown icons and sets spend it (their handlers answer 404), the fifth is 429."""
    with limited(settings, uploads_per_ip="4/minute", commands_per_ip="1/minute") as (
        client,
        container,
    ):
        owner = _bearer(container, "contributor")
        calls = _upload_calls(uuid.uuid4(), uuid.uuid4())
        for spent, (method, path, extra) in enumerate(calls, start=1):
            headers = {**owner, **extra.pop("headers", {})}
            response = client.request(method, path, headers=headers, **extra)
            assert response.status_code in {403, 404, 422}, (path, response.text)
            _assert_allowed(response, "uploads-ip", 4, 4 - spent)

        method, path, extra = _upload_calls(uuid.uuid4(), uuid.uuid4())[3]
        refused = client.request(
            method, path, headers={**owner, **extra["headers"]}, **{"content": extra["content"]}
        )
        _assert_refused(refused, "uploads-ip", 4, "uploads requests from this address")
        # The commands budget (one) was not drawn on by any upload.
        family = client.post("/v1/families", json={"name": "Maps"}, headers=owner)
        assert family.status_code == 201, family.text


def test_the_uploads_budget_per_account(settings: Settings) -> None:
    with limited(settings, uploads_per_account="1/minute") as (client, container):
        owner = _bearer(container, "contributor")
        path = f"/v1/icons/{uuid.uuid4()}/svg/uploads"
        assert client.post(path, headers=owner).status_code in {403, 404}
        _assert_refused(
            client.post(path, headers=owner),
            "uploads-account",
            1,
            "uploads requests from this account",
        )
        assert client.post(path, headers=_bearer(container, "contributor")).status_code in {
            403,
            404,
        }


def test_the_reads_budget_covers_search_suggest_and_min_position_reads_only(
    settings: Settings,
) -> None:
    with limited(settings, reads_per_ip="4/minute") as (client, container):
        customer = _bearer(container, "customer")
        metered = [
            ("/v1/icons/search?q=arrow", {}),
            ("/v1/icons/suggest?prefix=arr", {}),
            (f"/v1/icons/{uuid.uuid4()}?min_position=1", {}),
            (f"/v1/carts/{uuid.uuid4()}", {**customer, "X-Min-Position": "1"}),
        ]
        for spent, (path, headers) in enumerate(metered, start=1):
            response = client.get(path, headers=headers)
            _assert_allowed(response, "reads-ip", 4, 4 - spent)

        _assert_refused(
            client.get("/v1/icons/search?q=arrow"),
            "reads-ip",
            4,
            "reads requests from this address",
        )
        # A plain read is not metered: no budget, no fields, never refused.
        plain = client.get(f"/v1/icons/{uuid.uuid4()}")
        assert plain.status_code == 404
        assert "ratelimit" not in plain.headers
        assert client.get("/health/live").status_code == 200


def test_the_reads_budget_per_account(settings: Settings) -> None:
    with limited(settings, reads_per_account="1/minute") as (client, container):
        reader = _bearer(container, "customer")
        assert client.get("/v1/icons/suggest?prefix=arr", headers=reader).status_code == 200
        _assert_refused(
            client.get("/v1/icons/suggest?prefix=arr", headers=reader),
            "reads-account",
            1,
            "reads requests from this account",
        )
        assert client.get("/v1/icons/suggest?prefix=arr").status_code == 200


def test_several_quotas_of_one_budget_all_hold_and_a_refusal_spends_none(
    settings: Settings,
) -> None:
    with limited(settings, auth_per_ip="3/minute;5/hour") as (client, _):
        policy = '"auth-ip-60s";q=3;w=60, "auth-ip-3600s";q=5;w=3600'
        for spent in (1, 2, 3):
            response = _login(client)
            assert response.status_code == 401
            assert response.headers["ratelimit-policy"] == policy
            assert {name: left for name, (left, _) in _fields(response).items()} == {
                "auth-ip-60s": 3 - spent,
                "auth-ip-3600s": 5 - spent,
            }

        refused = _login(client)
        again = _login(client)

        assert refused.status_code == 429
        assert refused.json()["policy"] == "auth-ip-60s"
        assert refused.headers["ratelimit-policy"] == policy
        # The hour's quota was not drawn on by either refusal.
        for response in (refused, again):
            assert {name: left for name, (left, _) in _fields(response).items()} == {
                "auth-ip-60s": 0,
                "auth-ip-3600s": 2,
            }


def test_the_stripe_webhook_is_not_metered(settings: Settings) -> None:
    with limited(settings, commands_per_ip="1/minute") as (client, _):
        for _ in range(3):
            response = client.post("/v1/webhooks/stripe", content=b"{}")
            # Refused for its signature (whatever status that is), never for a budget.
            assert response.json()["code"] == "webhook_rejected", response.text
            assert "ratelimit" not in response.headers
