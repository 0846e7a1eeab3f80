"""Readiness probes of every dependency, each timed and bounded."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from infra.bootstrap import Container


@dataclass(frozen=True)
class CheckResult:
    name: str
    up: bool
    latency_ms: float
    error: str | None = None


def _postgres(container: Container) -> None:
    import psycopg

    with psycopg.connect(
        container.settings.postgres_dsn,
        connect_timeout=max(1, int(container.settings.health_timeout_s)),
    ) as conn:
        if conn.execute("SELECT 1").fetchone() != (1,):
            raise RuntimeError("SELECT 1 did not return 1")


def _redis(container: Container) -> None:
    if container.redis.ping() is not True:
        raise RuntimeError("PING was not answered")


def _kafka(container: Container) -> None:
    admin = container.kafka_admin()
    try:
        brokers = admin.describe_cluster().get("brokers", [])
    finally:
        admin.close()
    if not brokers:
        raise RuntimeError("no broker in the cluster metadata")


def _opensearch(container: Container) -> None:
    status = container.opensearch.cluster.health().get("status")
    if status not in {"green", "yellow"}:
        raise RuntimeError(f"cluster health is {status}")


def _s3(container: Container) -> None:
    container.s3.head_bucket(Bucket=container.settings.s3_bucket_private)


def _stripe(container: Container) -> None:
    container.stripe.v1.balance.retrieve()


CHECKS: dict[str, Callable[[Container], None]] = {
    "postgres": _postgres,
    "redis": _redis,
    "kafka": _kafka,
    "opensearch": _opensearch,
    "s3": _s3,
    "stripe": _stripe,
}


def _timed(name: str, check: Callable[[Container], None], container: Container) -> CheckResult:
    began = time.perf_counter()
    try:
        check(container)
    except Exception as exc:  # a failed probe is a result, reported by name
        return CheckResult(name, False, (time.perf_counter() - began) * 1000, _describe(exc))
    return CheckResult(name, True, (time.perf_counter() - began) * 1000)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."


def command_writers(container: Container) -> list[CheckResult]:
    """``command_writer:<context>`` per group-commit writer of this process's bus (none before
    the bus is built): down when its thread died or its oldest command waited past the
    deadline (it is stuck)."""
    bus = container.built_bus()
    if bus is None:
        return []
    return [CheckResult(w.name, w.healthy, 0.0, w.problem) for w in bus.health()]


def check_all(container: Container, pool: ThreadPoolExecutor) -> list[CheckResult]:
    """Run every probe concurrently; one that overruns the timeout counts as down. The bus's
    command writers follow the dependencies."""
    timeout = container.settings.health_timeout_s
    futures = {name: pool.submit(_timed, name, check, container) for name, check in CHECKS.items()}
    deadline = time.monotonic() + timeout + 0.5
    results = []
    for name, future in futures.items():
        try:
            results.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            results.append(CheckResult(name, False, timeout * 1000, f"no answer within {timeout}s"))
    return results + command_writers(container)
