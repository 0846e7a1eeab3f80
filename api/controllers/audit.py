"""Auditors' reads of the event store: an aggregate's history and its state at a version or a
time, and the logs of every context. Auditors and administrators only; every call is itself
recorded (an ``AuditAccess.Recorded`` event in the audit log) before it answers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter

from api.commanding import actor_of, correlation_id
from api.contract import facts
from api.controllers.deps import ContainerDep
from api.schemas import NO_NUL
from commands.errors import AccessDenied
from commands.policy import Action, Actor, Resource, decide
from infra.audit import history
from infra.audit.access import record_access
from infra.bootstrap import Container

Req = Request[Any, Any, Any]
LogName = Literal["catalog", "commerce", "identity", "audit"]
Instant = Annotated[dt.datetime, msgspec.Meta(tz=True)]
"""A time with its zone (e.g. 2026-11-23T12:00:00Z): an event time is an instant."""
Cursor = Annotated[str | None, QueryParameter(pattern=history.CURSOR_PATTERN)]


def _invalid(key: str, message: str) -> ValidationException:
    return ValidationException(
        detail=message, extra=[{"key": key, "source": "query", "message": message}]
    )


async def _authorised(
    request: Req,
    container: Container,
    operation: str,
    target: str,
    parameters: Mapping[str, object],
) -> Actor:
    """The caller, if the policy lets it read the audit history; the read is recorded first."""
    actor = actor_of(request, container)
    decision = decide(actor, Action.AUDIT_READ, Resource("audit"))
    if not decision.allowed:
        raise AccessDenied(decision.reason)
    correlation = correlation_id(request)
    await asyncio.to_thread(
        record_access,
        container.audit_application,
        actor=actor.id,
        roles=actor.roles,
        operation=operation,
        target=target,
        parameters=parameters,
        correlation_id=correlation,
    )
    return actor


def audit_readers_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard: runs before the query parameters are parsed, so a caller who may not read the
    history learns nothing from validation (401 or 403 first, then 422). OPTIONS stays open
    to everyone, as on every path."""
    if connection.scope.get("method") == "OPTIONS":
        return
    actor = actor_of(connection, connection.app.state.container)  # type: ignore[arg-type]
    decision = decide(actor, Action.AUDIT_READ, Resource("audit"))
    if not decision.allowed:
        raise AccessDenied(decision.reason)


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]  # noqa: RUF012
    guards = [audit_readers_only]  # noqa: RUF012
    opt = facts(correlated=True)  # each read is recorded with its correlation id

    @get(
        "/aggregates/{aggregate_id:uuid}/events",
        operation_id="auditAggregateEvents",
        summary="The full history of one aggregate (any context), in version order: type, "
        "version, position, time, actor, correlation and causation ids, data, chain hash.",
    )
    async def events(
        self,
        request: Req,
        container: ContainerDep,
        aggregate_id: FromPath[UUID],
        after_version: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> Response[dict[str, Any]]:
        await _authorised(
            request,
            container,
            "auditAggregateEvents",
            str(aggregate_id),
            {"after_version": after_version, "limit": limit},
        )
        context, events, more = await asyncio.to_thread(
            history.aggregate_events, container, aggregate_id, after_version, limit
        )
        following = events[-1]["aggregate_version"] if more and events else None
        return Response(
            {
                "aggregate_id": str(aggregate_id),
                "context": context,
                "events": events,
                "next_after_version": following,
            }
        )

    @get(
        "/aggregates/{aggregate_id:uuid}/state",
        operation_id="auditAggregateState",
        summary="The aggregate's state at a version (`version`), at a time (`at`: the last "
        "version whose event time is at or before it), at the earlier of the two when both are "
        "given, or now.",
    )
    async def state(
        self,
        request: Req,
        container: ContainerDep,
        aggregate_id: FromPath[UUID],
        version: Annotated[int | None, QueryParameter(ge=1)] = None,
        at: FromQuery[Instant | None] = None,
    ) -> Response[dict[str, Any]]:
        await _authorised(
            request,
            container,
            "auditAggregateState",
            str(aggregate_id),
            {"version": version, "at": at.isoformat() if at else None},
        )
        body = await asyncio.to_thread(
            lambda: history.state_at(container, aggregate_id, version=version, at=at)
        )
        return Response(body)

    @get(
        "/log",
        operation_id="auditLog",
        summary="The logs of every context (or one), filtered by event type, actor and event "
        "time, merged by event time; `next_from_position` continues where the page ended.",
    )
    async def log(  # noqa: PLR0917 - one parameter per query-string filter
        self,
        request: Req,
        container: ContainerDep,
        context: FromQuery[LogName | None] = None,
        from_position: Cursor = None,
        event_type: Annotated[
            str | None, QueryParameter(name="type", max_length=100, pattern=NO_NUL)
        ] = None,
        actor: Annotated[str | None, QueryParameter(max_length=200, pattern=NO_NUL)] = None,
        since: FromQuery[Instant | None] = None,
        until: FromQuery[Instant | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> Response[dict[str, Any]]:
        names = [context] if context else list(history.CONTEXT_NAMES)
        try:
            cursor = history.parse_cursor(from_position, names)
        except ValueError as exc:
            raise _invalid("from_position", str(exc)) from None
        wanted = history.LogFilter(type=event_type, actor=actor, since=since, until=until)
        await _authorised(
            request,
            container,
            "auditLog",
            "log",
            {
                "context": context,
                "from_position": from_position,
                "type": event_type,
                "actor": actor,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "limit": limit,
            },
        )
        rows, following, more = await asyncio.to_thread(
            history.log_page, container, names, cursor, wanted, limit
        )
        return Response(
            {
                "events": rows,
                "next_from_position": history.format_cursor(following),
                "more": more,
            }
        )
