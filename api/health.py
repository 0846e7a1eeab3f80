"""Liveness and readiness of the API process, and the guard in front of /metrics.

Readiness answers from probes cached for ``health_cache_s`` (the paid Stripe API at most every
``health_slow_probe_s``), so a flood of health requests costs one probe round per TTL, not a
connection per request. Anonymous callers see only up or down per dependency; an admin's token
adds latencies and error texts, which name hosts and users. The logs get every change."""

from __future__ import annotations

import asyncio
import hmac
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import SkipValidation
from litestar.plugins.prometheus import PrometheusController

from api.auth import bearer_value
from api.contract import facts
from api.sessions import verdict_for
from commands.errors import Unauthenticated
from domain.account import Role
from infra.bootstrap import Container
from infra.health import Readiness

DETAIL_ROLES = frozenset({Role.ADMIN.value, Role.SUPERADMIN.value})


class DependencyHealth(msgspec.Struct, omit_defaults=True):
    name: str
    status: str
    latency_ms: float | None = None
    error: str | None = None


class ReadinessReport(msgspec.Struct):
    status: str
    dependencies: list[DependencyHealth]
    down: list[str]


class Liveness(msgspec.Struct):
    status: str


def _sees_details(request: Request[Any, Any, Any], container: Container) -> bool:
    """An admin's valid access token shows the details; anything else (none, expired, of an
    ended session, another role) gets the anonymous view, never a 401: probes of load
    balancers carry no token. When sessions cannot be checked (Redis is down: what the details
    are for) the token's signature and claims decide alone."""
    token = bearer_value(request.headers.get("authorization"))
    claims = container.tokens.peek(token) if token else None
    if token is None or claims is None or verdict_for(request.scope, token).refusal is not None:
        return False
    roles = claims.actor.roles
    return bool(roles & DETAIL_ROLES) and Role.DENYALL.value not in roles


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012
    opt = facts(public=True)  # probes carry no token

    @get("/live", operation_id="getLiveness", summary="The process is up (no dependency checks).")
    async def live(self) -> Liveness:
        return Liveness(status="ok")

    @get(
        "/ready",
        operation_id="getReadiness",
        summary="Every dependency answers; 503 names the ones that do not. Latencies and errors "
        "only for an admin's token.",
        responses={
            503: ResponseSpec(
                data_container=ReadinessReport, description="A dependency does not answer."
            )
        },
    )
    async def ready(
        self,
        request: Request[Any, Any, Any],
        container: NamedDependency[SkipValidation[Container]],
        readiness: NamedDependency[SkipValidation[Readiness]],
    ) -> Response[ReadinessReport]:
        results = await asyncio.get_running_loop().run_in_executor(None, readiness.results)
        details = _sees_details(request, container)
        dependencies = [
            DependencyHealth(
                name=r.name,
                status="up" if r.up else "down",
                latency_ms=round(r.latency_ms, 2) if details else None,
                error=r.error if details else None,
            )
            for r in results
        ]
        down = [r.name for r in results if not r.up]
        body = ReadinessReport(
            status="down" if down else "ready", dependencies=dependencies, down=down
        )
        return Response(body, status_code=503 if down else 200)


def metrics_guard(token: str) -> Any:
    """A guard that lets /metrics answer only a request bearing ``token`` (none: open)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        if not token:
            return
        scheme, _, given = (connection.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise Unauthenticated("the metrics token is required")

    return guard


def metrics_controller(token: str) -> type[PrometheusController]:
    """/metrics behind ``metrics_guard(token)``."""

    class GuardedMetrics(PrometheusController):
        guards = [metrics_guard(token)]  # noqa: RUF012
        # Not an account's token: 401 only while ICONMARKET_METRICS_TOKEN is set.
        opt = facts(public=True, problems=(401,))

        @get(
            media_type=MediaType.TEXT,
            operation_id="getMetrics",
            summary="Prometheus metrics in the text exposition format.",
        )
        async def get(self) -> Response[bytes]:
            exposition: Response[bytes] = await PrometheusController.get.fn(self)
            return exposition

    return GuardedMetrics


def dependencies_for(container: Container, pool: ThreadPoolExecutor) -> dict[str, Any]:
    readiness = Readiness(
        container,
        pool,
        ttl_s=container.settings.health_cache_s,
        slow_ttl_s=container.settings.health_slow_probe_s,
    )
    return {
        "container": Provide(lambda: container, use_cache=True, sync_to_thread=False),
        "readiness": Provide(lambda: readiness, use_cache=True, sync_to_thread=False),
    }
