"""Facts about a route: what it declares of itself (`facts`, in its ``opt``) and what its
signature shows (`route_facts`): the problems of its operation are derived from them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from litestar.handlers import HTTPRouteHandler
from litestar.params import (
    BodyKwarg,
    CookieParameter,
    DependencyKwarg,
    HeaderParameter,
    ParameterKwarg,
)
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FACTS_KEY: Final = "contract"
Metered = Callable[[str, str, bool], bool]
"""Whether the rate limiter meters a request of (method, path template, given min_position)."""


def unmetered(_method: str, _path: str, _min_position: bool) -> bool:
    """No rate limiter."""
    return False


@dataclass(frozen=True)
class Facts:
    """What a route says about itself that no rule can see; see `facts`."""

    public: bool = False
    command: bool | None = None
    problems: frozenset[int] = frozenset()
    upload: tuple[str, ...] = ()
    cached: bool = False
    security: str | None = None
    correlated: bool = False
    creates: str | None = None


def facts(
    *,
    public: bool = False,
    command: bool | None = None,
    problems: Iterable[int] = (),
    upload: Iterable[str] = (),
    cached: bool = False,
    security: str | None = None,
    correlated: bool = False,
    creates: str | None = None,
) -> dict[str, Facts]:
    """A route's ``opt`` with its facts: ``public`` (no token needed: no 401 or 403 unless in
    ``problems``), ``command`` (it runs a command, when its method does not say so: a write
    does unless this is False), ``problems`` (statuses of its own, e.g. 401 for bad
    credentials), ``upload`` (the body is a file of these media types, or a multipart form with
    a ``file`` part), ``cached`` (it answers ``If-None-Match`` with 304), ``security`` (a scheme
    other than the bearer token), ``correlated`` (it records ``X-Correlation-Id`` without running
    a command), ``creates`` (the kind of resource whose id its answer's ``id`` is: the document
    links it to every operation with a ``{kind}_id`` path parameter)."""
    return {
        FACTS_KEY: Facts(
            public=public,
            command=command,
            problems=frozenset(problems),
            upload=tuple(upload),
            cached=cached,
            security=security,
            correlated=correlated,
            creates=creates,
        )
    }


@dataclass(frozen=True)
class RouteFacts:
    """Everything the problems of one operation are derived from."""

    method: str
    path: str
    declared: Facts
    path_ids: bool
    inputs: bool
    json_body: bool
    min_position: bool
    metered: bool

    @property
    def command(self) -> bool:
        if self.declared.command is not None:
            return self.declared.command
        return self.method in WRITES and not self.declared.public

    def statuses(self) -> set[int]:
        """The problem statuses this operation can answer."""
        found = set(self.declared.problems)
        if not self.declared.public:
            # 503: the token's session cannot be checked (api/sessions.py fails closed).
            found |= {401, 403, 503}
        if self.path_ids:
            found.add(404)
        if self.inputs or self.command or self.declared.correlated:
            found.add(422)
        if self.json_body or self.declared.upload:
            found |= {400, 413}
        if self.declared.upload:
            found.add(415)
        if self.min_position:
            found |= {409, 503}
        if self.command:
            found |= {409, 503}
        if self.metered:
            found |= {429, 503}
        return found


def declared_facts(handler: HTTPRouteHandler) -> Facts:
    declared = handler.opt.get(FACTS_KEY, Facts())
    if not isinstance(declared, Facts):
        raise TypeError(f"{handler}: opt[{FACTS_KEY!r}] must come from api.contract.facts()")
    return declared


def route_facts(
    route: HTTPRoute, handler: HTTPRouteHandler, method: str, metered: Metered = unmetered
) -> RouteFacts:
    fields = inputs(handler)
    min_position = any(parameter_name(name, fd) == "min_position" for name, fd in fields.items())
    return RouteFacts(
        method=method,
        path=route.path_format,
        declared=declared_facts(handler),
        path_ids=bool(route.path_parameters),
        inputs=bool(fields),
        json_body="data" in fields,
        min_position=min_position,
        metered=metered(method, route.path_format, min_position),
    )


def inputs(handler: HTTPRouteHandler) -> dict[str, FieldDefinition]:
    """The handler's request inputs (parameters and body), not its dependencies."""
    skipped = {"self", "request", "state", "scope", "headers", "cookies", "query"}
    return {
        name: fd
        for name, fd in handler.parsed_fn_signature.parameters.items()
        if name not in skipped
        and name not in handler.resolve_dependencies()
        and not _is_dependency(fd)
    }


def _is_dependency(fd: FieldDefinition) -> bool:
    return isinstance(fd.kwarg_definition, DependencyKwarg)


def location(name: str, fd: FieldDefinition) -> str:
    kwarg = fd.kwarg_definition
    if name == "data" or isinstance(kwarg, BodyKwarg):
        return "body"
    if isinstance(kwarg, HeaderParameter) or (isinstance(kwarg, ParameterKwarg) and kwarg.header):
        return "header"
    if isinstance(kwarg, CookieParameter) or (isinstance(kwarg, ParameterKwarg) and kwarg.cookie):
        return "cookie"
    return "parameter"


def parameter_name(name: str, fd: FieldDefinition) -> str:
    """The name a parameter has in the request (a header's in lower case, as Litestar has it)."""
    kwarg = fd.kwarg_definition
    if isinstance(kwarg, ParameterKwarg):
        given = getattr(kwarg, "name", None) or kwarg.header or kwarg.cookie or kwarg.query
        if given:
            return given.lower() if location(name, fd) == "header" else given
    return name
