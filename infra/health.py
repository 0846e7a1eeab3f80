"""Readiness probes of every dependency, each timed and bounded, and the cache that answers
/health/ready from them (so a flood of health requests costs one probe round per TTL)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from infra.bootstrap import Container

log = logging.getLogger("iconmarket.health")


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


def _smtp(container: Container) -> None:
    import smtplib

    s = container.settings
    with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.health_timeout_s) as smtp:
        code, reply = smtp.noop()
        if code != 250:
            raise RuntimeError(f"NOOP answered {code} {reply!r}")


CHECKS: dict[str, Callable[[Container], None]] = {
    "postgres": _postgres,
    "redis": _redis,
    "kafka": _kafka,
    "opensearch": _opensearch,
    "s3": _s3,
    "stripe": _stripe,
    "smtp": _smtp,
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


def check_all(
    container: Container,
    pool: ThreadPoolExecutor,
    checks: dict[str, Callable[[Container], None]] | None = None,
) -> list[CheckResult]:
    """Run every probe (of ``checks``, default all) concurrently; one that overruns the timeout
    counts as down. The bus's command writers follow the dependencies."""
    timeout = container.settings.health_timeout_s
    chosen = CHECKS if checks is None else checks
    futures = {name: pool.submit(_timed, name, check, container) for name, check in chosen.items()}
    deadline = time.monotonic() + timeout + 0.5
    results = []
    for name, future in futures.items():
        try:
            results.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            results.append(CheckResult(name, False, timeout * 1000, f"no answer within {timeout}s"))
    return results + command_writers(container)


# Probes whose dependency is a paid or rate-limited API are run at most this rarely.
SLOW_PROBES = frozenset({"stripe"})


class Readiness:
    """The last probe results, run again only when older than ``ttl_s`` (``slow_ttl_s`` for the
    paid APIs in ``SLOW_PROBES``). One caller runs the probes while the others wait for its
    answer, so N concurrent requests cost one connection per dependency, not N. A dependency
    that changes state is logged with its error: the details go to the logs, not to anonymous
    callers."""

    def __init__(
        self,
        container: Container,
        pool: ThreadPoolExecutor,
        *,
        ttl_s: float,
        slow_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._container = container
        self._pool = pool
        self._ttl = {name: slow_ttl_s if name in SLOW_PROBES else ttl_s for name in CHECKS}
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, CheckResult]] = {}
        self.rounds = 0  # probe rounds run (for tests and metrics)

    def results(self) -> list[CheckResult]:
        with self._lock:
            now = self._clock()
            due = {
                name: check
                for name, check in CHECKS.items()
                if name not in self._last or now - self._last[name][0] >= self._ttl[name]
            }
            writers: list[CheckResult] = []
            if due:
                self.rounds += 1
                fresh = check_all(self._container, self._pool, due)
                ran = {r.name: r for r in fresh if r.name in due}
                writers = [r for r in fresh if r.name not in due]
                for name, result in ran.items():
                    self._note(name, result)
                    self._last[name] = (now, result)
            else:
                writers = command_writers(self._container)
            return [self._last[name][1] for name in CHECKS] + writers

    def _note(self, name: str, result: CheckResult) -> None:
        before = self._last.get(name)
        if before is not None and before[1].up == result.up:
            return
        if result.up:
            if before is not None:
                log.info("dependency up again", extra={"dependency": name})
        else:
            log.warning("dependency down", extra={"dependency": name, "error": result.error})
