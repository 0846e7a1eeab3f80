"""The document: Litestar's generated OpenAPI finished in place (see `api.contract`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, get_args

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    Components,
    Link,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    RequestBody,
    SecurityScheme,
)
from litestar.routes import HTTPRoute

from api.contract.facts import (
    Metered,
    RouteFacts,
    declared_facts,
    inputs,
    parameter_name,
    route_facts,
    unmetered,
)
from api.contract.parameters import (
    COMMAND_HEADERS,
    IF_NONE_MATCH,
    SCALARS_KEY,
    Verbatim,
    parameter_schema,
    scalars,
)
from api.contract.problems import PROBLEM_SCHEMA, REFUSALS, Refusal
from api.errors import PROBLEM_JSON

BEARER: Final = "bearer"
STRIPE_SIGNATURE: Final = "stripeSignature"


def _problem_response(refusal: Refusal) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=refusal.description,
        headers={
            name: OpenAPIHeader(
                description=text, required=True, schema=Verbatim(document={"type": "string"})
            )
            for name, text in refusal.headers.items()
        }
        or None,
        content={
            PROBLEM_JSON: OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))
        },
    )


def _components(openapi: OpenAPI) -> Components:
    components = openapi.components
    components.schemas["Problem"] = Verbatim(document=PROBLEM_SCHEMA)
    components.responses = {
        **(components.responses or {}),
        **{refusal.name: _problem_response(refusal) for refusal in REFUSALS.values()},
    }
    components.parameters = {
        **(components.parameters or {}),
        **COMMAND_HEADERS,
        "IfNoneMatch": IF_NONE_MATCH,
    }
    components.security_schemes = {
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="An access token from POST /v1/auth/token.",
        ),
        STRIPE_SIGNATURE: SecurityScheme(
            type="apiKey",
            name="Stripe-Signature",
            security_scheme_in="header",
            description="Stripe's signature of the webhook body with the endpoint's secret.",
        ),
    }
    return components


def _body_types(handlers: Iterable[HTTPRouteHandler]) -> list[Any]:
    """The msgspec structs handlers take or answer (nested ones follow by reference)."""
    found: list[Any] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            if annotation not in found:
                found.append(annotation)
            return
        for arg in get_args(annotation):
            visit(arg)

    for handler in handlers:
        data = handler.parsed_fn_signature.parameters.get("data")
        if data is not None:
            visit(data.annotation)
        visit(handler.parsed_fn_signature.return_type.annotation)
    return found


def _exact_bodies(openapi: OpenAPI, handlers: Sequence[HTTPRouteHandler]) -> None:
    """Replace Litestar's schemas of msgspec structs by msgspec's own."""
    types = _body_types(handlers)
    _, generated = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    for name, schema in generated.items():
        openapi.components.schemas[name] = Verbatim(document=schema)


def _exact_parameters(operation: Operation, handler: HTTPRouteHandler) -> None:
    by_name = {parameter_name(name, fd): fd for name, fd in inputs(handler).items()}
    for parameter in operation.parameters or []:
        if isinstance(parameter, Reference):
            continue
        fd = by_name.get(parameter.name)
        if fd is None:
            raise LookupError(f"{operation.operation_id}: no input declares {parameter.name!r}")
        parameter.schema = Verbatim(document=parameter_schema(fd))


def _upload_body(media_types: Sequence[str]) -> RequestBody:
    binary = {"type": "string", "format": "binary"}
    content = {media: OpenAPIMediaType(schema=Verbatim(document=binary)) for media in media_types}
    content["multipart/form-data"] = OpenAPIMediaType(
        schema=Verbatim(
            document={
                "type": "object",
                "properties": {"file": binary},
                "required": ["file"],
            }
        )
    )
    return RequestBody(content=content, required=True)


def _finish(operation: Operation, route_facts_: RouteFacts) -> None:
    declared = route_facts_.declared
    responses = {
        status: response
        for status, response in (operation.responses or {}).items()
        if status != "400"  # Litestar's ValidationException: validation failures are 422 problems
    }
    for status in sorted(route_facts_.statuses()):
        responses[str(status)] = Reference(ref=f"#/components/responses/{REFUSALS[status].name}")
    if declared.cached:
        responses["304"] = OpenAPIResponse(
            description="Not modified: the ETag you sent is current."
        )
    operation.responses = responses
    parameters = list(operation.parameters or [])
    if route_facts_.command:
        parameters += [Reference(ref=f"#/components/parameters/{name}") for name in COMMAND_HEADERS]
    elif declared.correlated:
        parameters.append(Reference(ref="#/components/parameters/CorrelationId"))
    if declared.cached:
        parameters.append(Reference(ref="#/components/parameters/IfNoneMatch"))
    operation.parameters = parameters or None
    if declared.upload:
        operation.request_body = _upload_body(declared.upload)
    if declared.security:
        operation.security = [{declared.security: []}]
    elif not declared.public:
        operation.security = [{BEARER: []}]
    else:
        operation.security = []


def operations(app: Litestar) -> Iterable[tuple[HTTPRoute, HTTPRouteHandler, str]]:
    """Every documented (route, handler, method) of ``app``."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            for method in sorted(handler.http_methods):
                yield route, handler, method


def _operation(openapi: OpenAPI, route: HTTPRoute, method: str) -> Operation:
    operation = getattr((openapi.paths or {})[route.path_format], method.lower())
    if not isinstance(operation, Operation):
        raise LookupError(f"{method} {route.path_format} is not in the document")
    return operation


def _links(openapi: OpenAPI, found: Sequence[tuple[HTTPRoute, HTTPRouteHandler, str]]) -> None:
    """Link each creating operation's answer to the operations its ``id`` is a parameter of."""
    takes: dict[str, list[str]] = {}
    for route, _handler, method in found:
        for name in route.path_parameters:
            takes.setdefault(name, []).append(_operation(openapi, route, method).operation_id or "")
    for route, handler, method in found:
        kind = declared_facts(handler).creates
        if kind is None:
            continue
        operation = _operation(openapi, route, method)
        created = next(
            response
            for status, response in (operation.responses or {}).items()
            if status.startswith("2") and isinstance(response, OpenAPIResponse)
        )
        parameter = f"{kind}_id"
        created.links = {
            target: Link(operation_id=target, parameters={parameter: "$response.body#/id"})
            for target in sorted(takes.get(parameter, []))
        }


def document(app: Litestar, metered: Metered = unmetered) -> OpenAPI:
    """Finish ``app``'s OpenAPI document in place (it is built once and served as it is);
    ``metered`` says which requests the app's rate limiter meters (429)."""
    openapi = app.openapi_schema
    _components(openapi)
    found = list(operations(app))
    _exact_bodies(openapi, [handler for _, handler, _ in found])
    for route, handler, method in found:
        operation = _operation(openapi, route, method)
        _exact_parameters(operation, handler)
        _finish(operation, route_facts(route, handler, method, metered))
        handler.opt[SCALARS_KEY] = scalars(handler)
    _links(openapi, found)
    return openapi
