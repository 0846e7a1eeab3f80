"""Liveness and readiness of the API process."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import SkipValidation

from infra.bootstrap import Container
from infra.health import check_all


class DependencyHealth(msgspec.Struct):
    name: str
    status: str
    latency_ms: float
    error: str | None = None


class Readiness(msgspec.Struct):
    status: str
    dependencies: list[DependencyHealth]
    down: list[str]


class Liveness(msgspec.Struct):
    status: str


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012

    @get("/live", operation_id="getLiveness", summary="The process is up (no dependency checks).")
    async def live(self) -> Liveness:
        return Liveness(status="ok")

    @get(
        "/ready",
        operation_id="getReadiness",
        summary="Every dependency answers; 503 names the ones that do not.",
        responses={},
    )
    async def ready(
        self,
        container: NamedDependency[SkipValidation[Container]],
        health_pool: NamedDependency[SkipValidation[ThreadPoolExecutor]],
    ) -> Response[Readiness]:
        results = await asyncio.get_running_loop().run_in_executor(
            None, check_all, container, health_pool
        )
        dependencies = [
            DependencyHealth(
                name=r.name,
                status="up" if r.up else "down",
                latency_ms=round(r.latency_ms, 2),
                error=r.error,
            )
            for r in results
        ]
        down = [r.name for r in results if not r.up]
        body = Readiness(status="down" if down else "ready", dependencies=dependencies, down=down)
        return Response(body, status_code=503 if down else 200)


def dependencies_for(container: Container, pool: ThreadPoolExecutor) -> dict[str, Any]:
    from litestar.di import Provide

    return {
        "container": Provide(lambda: container, use_cache=True, sync_to_thread=False),
        "health_pool": Provide(lambda: pool, use_cache=True, sync_to_thread=False),
    }
