"""The contract's rules (api/contract): problems from the route's facts, msgspec's schemas,
bounds, OPTIONS, and parameters taken only as documented. The e2e contract test runs
schemathesis over the whole document; these say why each piece holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, get_args

import msgspec
import pytest
from litestar import Litestar, get, post
from litestar.params import FromPath, JSONBody
from litestar.testing import TestClient

from api import schemas
from api.app import create_app
from api.contract import document, facts, operations, route_facts
from api.contract.problems import REFUSALS
from api.errors import COMMAND_STATUS, DOMAIN_STATUS, EXCEPTION_HANDLERS
from commands.handlers.identity import SELF_SERVICE_ROLES
from infra.bootstrap import bootstrap
from infra.settings import load_settings
from tests.support import DEV_ENVIRON

Spec = dict[str, Any]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def app() -> Litestar:
    built = create_app(bootstrap(load_settings(DEV_ENVIRON)))
    built.on_startup.clear()  # no client warm-up: these tests touch no service
    return built


@pytest.fixture(scope="module")
def spec(app: Litestar) -> Spec:
    return app.openapi_schema.to_schema()


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app) as test_client:
        yield test_client


def _operation(spec: Spec, operation_id: str) -> Spec:
    for item in spec["paths"].values():
        for operation in item.values():
            if operation.get("operationId") == operation_id:
                found: Spec = operation
                return found
    raise LookupError(operation_id)


def _problems(spec: Spec, operation_id: str) -> set[int]:
    responses = _operation(spec, operation_id)["responses"]
    return {int(status) for status, response in responses.items() if "$ref" in response}


def test_every_status_the_error_mapping_answers_has_a_shared_problem_response() -> None:
    mapped = {status for _, status in DOMAIN_STATUS} | set(COMMAND_STATUS.values())
    # The handlers of their own: stale, command_timeout, store_unavailable, hashing, Stripe (503),
    # position_beyond_head (409), media refusals and validation (422); Litestar's 400/413/415.
    mapped |= {503, 409, 422, 400, 413, 415, 429}
    assert mapped <= set(REFUSALS)
    assert len(EXCEPTION_HANDLERS) >= 10


def test_each_operation_documents_the_problems_its_facts_give(spec: Spec) -> None:
    expected = {
        "getLiveness": set(),
        "getMetrics": {401},  # its own token, while ICONMARKET_METRICS_TOKEN is set
        "registerAccount": {400, 409, 413, 422, 429, 503},  # no token: no 401 or 403
        "issueToken": {400, 401, 413, 422, 429, 503},
        "getMe": {401, 403, 503},  # 503: sessions cannot be checked (they fail closed)
        "logout": {401, 403, 429, 503},  # metered as an auth request
        "createFamily": {400, 401, 403, 409, 413, 422, 429, 503},
        "publishFamily": {401, 403, 404, 409, 422, 429, 503},
        "getFamily": {404, 409, 422, 429, 503},  # public; min_position: beyond head, stale
        "searchIcons": {409, 422, 429, 503},
        "getCart": {401, 403, 404, 409, 410, 422, 429, 503},
        "getMyCart": {401, 403, 404, 409, 422, 429, 503},
        "addToCart": {400, 401, 403, 404, 409, 410, 413, 422, 429, 503},
        "uploadIconSvg": {400, 401, 403, 404, 409, 413, 415, 422, 429, 503},
        "downloadIcon": {401, 403, 404, 409, 422, 503},  # a command, not metered
        "payOrder": {401, 403, 404, 409, 422, 429, 502, 503},
        "stripeWebhook": {400, 401, 503},
        "auditLog": {401, 403, 422, 503},
    }
    assert {operation: _problems(spec, operation) for operation in expected} == expected


def test_problem_responses_are_shared_components_with_their_headers(spec: Spec) -> None:
    responses = spec["components"]["responses"]
    assert {name for name in responses} == {refusal.name for refusal in REFUSALS.values()}
    for refusal in REFUSALS.values():
        response = responses[refusal.name]
        assert response["content"] == {
            PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
        assert {name for name in response.get("headers", {})} == set(refusal.headers)
    assert set(responses["Unavailable"]["headers"]) == {"Retry-After"}
    assert set(responses["RateLimited"]["headers"]) == {
        "Retry-After",
        "RateLimit",
        "RateLimit-Policy",
    }
    assert set(responses["Unauthenticated"]["headers"]) == {"WWW-Authenticate"}
    own = []
    for item in spec["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                if "$ref" not in response:
                    own.append((operation["operationId"], status))
                    continue
                assert response["$ref"] == f"#/components/responses/{REFUSALS[int(status)].name}"
    assert own == [("getReadiness", "503")]  # its report, not a problem


def test_litestar_s_own_400_validation_response_is_gone(spec: Spec) -> None:
    assert "ValidationException" not in str(spec)
    assert 400 not in _problems(spec, "getFamily")


def test_security_is_the_bearer_token_except_where_a_route_says_otherwise(spec: Spec) -> None:
    assert _operation(spec, "createFamily")["security"] == [{"bearer": []}]
    assert _operation(spec, "getFamily")["security"] == []
    assert _operation(spec, "stripeWebhook")["security"] == [{"stripeSignature": []}]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /v1/auth/token.",
    }


def test_commands_document_their_headers_with_the_patterns_the_api_checks(spec: Spec) -> None:
    refs = [p["$ref"] for p in _operation(spec, "createFamily")["parameters"] if "$ref" in p]
    assert refs == [
        "#/components/parameters/IdempotencyKey",
        "#/components/parameters/IfMatch",
        "#/components/parameters/CorrelationId",
    ]
    parameters = spec["components"]["parameters"]
    assert parameters["IdempotencyKey"]["schema"]["pattern"] == "^[A-Za-z0-9._:-]{1,200}$"
    assert parameters["CorrelationId"]["schema"]["pattern"] == "^[A-Za-z0-9._-]{1,128}$"
    assert "parameters" not in _operation(spec, "getMe")


def test_struct_schemas_are_msgspec_s_own(spec: Spec) -> None:
    structs = [schemas.RegisterBody, schemas.FamilyBody, schemas.CartLineBody, schemas.IconSetPatch]
    _, generated = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    for name, schema in generated.items():
        assert spec["components"]["schemas"][name] == schema
    register = spec["components"]["schemas"]["RegisterBody"]
    assert register["additionalProperties"] is False  # forbid_unknown_fields
    assert register["properties"]["roles"]["items"] == {"enum": sorted(SELF_SERVICE_ROLES)}
    family = spec["components"]["schemas"]["FamilyBody"]
    assert family["properties"]["tags"]["items"]["maxLength"] == 40  # item bounds survive


def test_parameters_state_their_real_bounds(spec: Spec) -> None:
    family = {p["name"]: p for p in _operation(spec, "getFamily")["parameters"] if "name" in p}
    position = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    assert family["min_position"]["schema"] == position
    assert (family["x-min-position"]["in"], family["x-min-position"]["schema"]) == (
        "header",
        position,
    )
    audit = {
        p["name"]: p["schema"] for p in _operation(spec, "auditLog")["parameters"] if "name" in p
    }
    assert audit["since"] == {"type": "string", "format": "date-time"}
    assert audit["from_position"]["pattern"].startswith("^(?:[0-9]{1,18}|")
    download = {
        p["name"]: p["schema"]
        for p in _operation(spec, "downloadIcon")["parameters"]
        if "name" in p
    }
    assert download["format"]["enum"] == ["pdf", "png", "svg", "webp"]
    assert download["size"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


def test_the_patterns_mean_the_same_in_python_and_in_json_schema() -> None:
    spaces = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    matched = {chr(c) for c in range(0x110000) if re.match(f"[{schemas.WHITE_SPACE}]", chr(c))}
    assert matched == spaces
    email = re.compile(get_args(schemas.Email)[1].pattern)
    assert [bool(email.search(text)) for text in ("a@b.c", "a@b.c\n", "0@0", "a\x1d@b.c")] == [
        True,
        False,
        False,
        False,
    ]
    name = re.compile(get_args(schemas.Name)[1].pattern)
    assert [bool(name.search(text)) for text in ("Arrows", " \u3000\x1c", "a\x00b")] == [
        True,
        False,
        False,
    ]


def test_a_creating_operation_links_its_id_to_the_operations_that_take_it(spec: Spec) -> None:
    links = _operation(spec, "createFamily")["responses"]["201"]["links"]
    assert set(links) == {
        "createIconSet",
        "getFamily",
        "publishFamily",
        "unpublishFamily",
        "updateFamily",
    }
    assert links["getFamily"] == {
        "operationId": "getFamily",
        "parameters": {"family_id": "$response.body#/id"},
    }


class WidgetBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=10)]


@post("/v1/widgets/{widget_id:uuid}/parts", operation_id="addWidgetPart", status_code=201)
async def _add_part(widget_id: FromPath[str], data: JSONBody[WidgetBody]) -> None:
    del widget_id, data


@get("/v1/gadgets", operation_id="listGadgets", opt=facts(public=True))
async def _gadgets() -> list[str]:
    return []


def test_a_new_route_gets_its_problems_without_a_list_to_keep() -> None:
    test_app = Litestar([_add_part, _gadgets])
    spec = document(test_app, metered=lambda method, _path, _waits: method == "POST").to_schema()
    assert _problems(spec, "addWidgetPart") == {400, 401, 403, 404, 409, 413, 422, 429, 503}
    assert _problems(spec, "listGadgets") == set()
    found = {
        handler.operation_id: route_facts(r, handler, m) for r, handler, m in operations(test_app)
    }
    assert found["addWidgetPart"].command
    assert not found["listGadgets"].command
    assert spec["components"]["schemas"]["WidgetBody"]["additionalProperties"] is False


def test_options_names_every_method_of_its_path(client: TestClient) -> None:  # type: ignore[type-arg]
    some = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert client.options(f"/v1/families/{some}").headers["allow"] == "GET, OPTIONS, PATCH"
    assert client.options(f"/v1/me/favourites/{some}").headers["allow"] == "DELETE, OPTIONS, PUT"


@pytest.mark.parametrize(
    ("path", "headers", "key", "message"),
    [
        ("/v1/families", {"x-min-position": "null"}, "x-min-position", "must have a value"),
        ("/v1/families?min_position=1&min_position=2", {}, "min_position", "more than once"),
    ],
    ids=["null-header", "repeated"],
)
def test_a_parameter_is_taken_only_in_its_documented_form(
    client: TestClient,  # type: ignore[type-arg]
    path: str,
    headers: dict[str, str],
    key: str,
    message: str,
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "validation_failed"
    assert [error["key"] for error in body["errors"]] == [key]
    assert message in body["errors"][0]["message"]
    # The audit's time and choice parameters: tests/integration/test_audit_history.py (the
    # audit decides access before it reads parameters, and access needs the account's state).
