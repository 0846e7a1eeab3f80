"""The API's own behaviour that needs no dependency: liveness, request ids, problem+json."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from infra.bootstrap import bootstrap
from infra.settings import load_settings
from tests.support import DEV_ENVIRON


@pytest.fixture
def client() -> Iterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(bootstrap(load_settings(DEV_ENVIRON)))
    app.on_startup.clear()  # no client warm-up: these tests touch no service
    with TestClient(app) as test_client:
        yield test_client


def test_liveness_needs_no_dependency(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_a_request_id_is_echoed_or_made(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (
        client.get("/health/live", headers={"X-Request-ID": "req-42"}).headers["x-request-id"]
        == "req-42"
    )
    made = client.get("/health/live", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]
    assert len(made) == 32
    assert made != "bad id!"


def test_unknown_routes_are_problem_json(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/v1/nothing-here", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://iconmarket.dev/problems/not_found",
        "title": "Not Found",
        "status": 404,
        "code": "not_found",
        "detail": "Not Found",
        "request_id": "req-7",
    }


def test_openapi_lists_the_health_operations(client: TestClient) -> None:  # type: ignore[type-arg]
    spec = client.get("/schema/openapi.json").json()
    operation_ids = {
        operation["operationId"] for path in spec["paths"].values() for operation in path.values()
    }
    assert {"getLiveness", "getReadiness"} <= operation_ids


def test_metrics_are_exposed_in_prometheus_format(client: TestClient) -> None:  # type: ignore[type-arg]
    client.get("/health/live")
    body = client.get("/metrics").text
    assert (
        'iconmarket_requests_total{app_name="iconmarket",method="GET",path="/health/live"' in body
    )


def test_access_log_lines_are_json_with_the_request_id(
    client: TestClient,  # type: ignore[type-arg]
    caplog: pytest.LogCaptureFixture,
) -> None:
    from infra.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="iconmarket.access"):
        client.get("/health/live", headers={"X-Request-ID": "req-log"})
    record = next(r for r in caplog.records if r.name == "iconmarket.access")
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "request"
    assert line["path"] == "/health/live"
    assert line["status"] == 200
    assert line["method"] == "GET"


def test_metrics_behind_a_token_answer_only_a_request_bearing_it() -> None:
    app = create_app(
        bootstrap(load_settings({**DEV_ENVIRON, "ICONMARKET_METRICS_TOKEN": "m-token-7"}))
    )
    app.on_startup.clear()
    with TestClient(app) as guarded:
        refused = guarded.get("/metrics")
        wrong = guarded.get("/metrics", headers={"Authorization": "Bearer m-token-8"})
        allowed = guarded.get("/metrics", headers={"Authorization": "Bearer m-token-7"})
    assert (refused.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "unauthenticated"
    assert "iconmarket_requests_total" in allowed.text


def test_every_response_carries_the_security_headers(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/health/live", "/no/such/route"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    docs = client.get("/schema/swagger")
    assert docs.status_code == 200
    policy = docs.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net" in policy
    assert docs.headers["x-content-type-options"] == "nosniff"


def test_an_unavailable_event_store_is_a_503_problem_to_retry() -> None:
    from api.errors import EXCEPTION_HANDLERS
    from commands.errors import StoreUnavailable

    error = StoreUnavailable("the event store is unavailable; the command was not applied")
    handler = next(EXCEPTION_HANDLERS[k] for k in type(error).__mro__ if k in EXCEPTION_HANDLERS)
    response = handler(None, error)  # type: ignore[arg-type]
    assert (response.status_code, response.media_type, response.headers["Retry-After"]) == (
        503,
        "application/problem+json",
        "1",
    )
    assert (response.content["code"], response.content["detail"]) == (
        "store_unavailable",
        str(error),
    )


def test_an_unknown_documentation_path_is_a_problem_like_any_404(client: TestClient) -> None:  # type: ignore[type-arg]
    unknown = client.get("/schema/no-such-page")
    assert (unknown.status_code, unknown.headers["content-type"]) == (
        404,
        "application/problem+json",
    )
    assert unknown.json()["code"] == "not_found"
    assert client.get("/no/such/route").json()["code"] == "not_found"
    assert client.get("/schema/openapi.json").status_code == 200
    assert client.get("/schema").headers["content-type"].startswith("text/html")
