"""From an HTTP request to a command result: the actor, the guards, and the response."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import msgspec
from litestar import Request, Response

from api.auth import TokenClaims, bearer_token
from api.sessions import verdict_for
from commands.policy import Actor
from commands.results import CommandContext, CommandResult
from infra.bootstrap import Container
from infra.logs import request_id_var

# The command headers' forms; api/contract.py documents these very patterns.
IF_MATCH = re.compile(r'^\s*(?:W/)?"?([0-9]{1,18})"?\s*$')
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
# No ':' so that a caller's id can never pass for the service's own (``stripe:evt_…``).
CORRELATION_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class CommandAccepted(msgspec.Struct):
    """A command's outcome: pass ``position`` as ``min_position`` to read your own write."""

    id: str
    version: int
    position: int


def claims_of(request: Request[Any, Any, Any], container: Container) -> TokenClaims:
    """The claims of the request's access token, once its session was found to hold (the
    check `api.sessions` made before the handler): else 401, or 503 when it cannot be told."""
    token = bearer_token(request.headers.get("authorization"))
    claims = container.tokens.claims(token)
    verdict_for(request.scope, token).enforce()
    return claims


def actor_of(request: Request[Any, Any, Any], container: Container) -> Actor:
    return claims_of(request, container).actor


def _expected_version(request: Request[Any, Any, Any]) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    match = IF_MATCH.match(header)
    if match is None:
        raise msgspec.ValidationError('If-Match must be an aggregate version such as "3"')
    return int(match.group(1))


def _idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise msgspec.ValidationError(
            "Idempotency-Key must be 1-200 characters of letters, digits and . _ : -"
        )
    return key


def correlation_id(request: Request[Any, Any, Any]) -> str:
    """The caller's ``X-Correlation-Id``, else this request's id, else a new one. A given id
    must be 1-128 letters, digits, ``.``, ``_`` or ``-`` (else 422 before anything happens):
    it is stored with every event of the command."""
    given = request.headers.get("x-correlation-id")
    if given is None:
        return request_id_var.get() or uuid.uuid4().hex
    if not CORRELATION_ID.match(given):
        from litestar.exceptions import ValidationException

        raise ValidationException(
            "X-Correlation-Id must be 1-128 characters of letters, digits and . _ -"
        )
    return given


def context_for(request: Request[Any, Any, Any], actor: Actor) -> CommandContext:
    return CommandContext(
        actor=actor.id,
        roles=actor.roles,
        correlation_id=correlation_id(request),
        idempotency_key=_idempotency_key(request),
        expected_version=_expected_version(request),
    )


def command_context(
    request: Request[Any, Any, Any], container: Container, actor: Actor | None = None
) -> CommandContext:
    """The command context of this request: the caller (authenticated unless ``actor`` is
    given) and its headers; a malformed header is a 422."""
    try:
        return context_for(request, actor or actor_of(request, container))
    except msgspec.ValidationError as exc:
        from litestar.exceptions import ValidationException

        raise ValidationException(str(exc)) from None


def result_headers(result: CommandResult) -> dict[str, str]:
    return {
        "ETag": f'"{result.version}"',
        "Idempotent-Replayed": "true" if result.replayed else "false",
    }


async def run_command(container: Container, command: object, ctx: CommandContext) -> CommandResult:
    bus = container.bus
    if bus.group_commit:
        # Preparing (loads, domain logic) blocks, so it runs in a worker thread; the save happens
        # in the bus's writer thread, batched with other commands.
        future = await asyncio.to_thread(bus.submit, command, ctx)
        return await asyncio.wrap_future(future)
    return await asyncio.to_thread(bus.execute, command, ctx)


async def dispatch(
    request: Request[Any, Any, Any],
    container: Container,
    command: object,
    *,
    status_code: int = 202,
    actor: Actor | None = None,
) -> Response[CommandAccepted]:
    """Authenticate (unless ``actor`` is given), run ``command``, answer with its result."""
    ctx = command_context(request, container, actor)
    result = await run_command(container, command, ctx)
    return Response(
        CommandAccepted(str(result.aggregate_id), result.version, result.position),
        status_code=status_code,
        headers=result_headers(result),
    )


ANONYMOUS = Actor(id="anonymous", roles=frozenset())
