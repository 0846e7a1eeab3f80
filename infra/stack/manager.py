"""`iconmarket stack up | down | status | logs`: the native service stack."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from infra.stack import process
from infra.stack.base import Service, StackContext, StackError
from infra.stack.kafka import Kafka
from infra.stack.mailpit import Mailpit
from infra.stack.objectstore import ObjectStore
from infra.stack.opensearch import OpenSearch
from infra.stack.postgres import Postgres
from infra.stack.redis import Redis
from infra.stack.stripemock import StripeMock

SERVICES: tuple[Service, ...] = (
    Postgres(),
    Redis(),
    Kafka(),
    OpenSearch(),
    ObjectStore(),
    StripeMock(),
    Mailpit(),
)
Report = Callable[[str], None]


def select(names: Sequence[str] | None) -> list[Service]:
    if not names:
        return list(SERVICES)
    by_name = {service.name: service for service in SERVICES}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; known: {sorted(by_name)}")
    return [by_name[name] for name in names]


def running_pid(service: Service, ctx: StackContext) -> int | None:
    return process.running_pid(service.pid_file(ctx))


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


def _failure(service: Service, ctx: StackContext, reason: str) -> StackError:
    return StackError(
        f"{service.name} is not ready: {reason}\n"
        f"  command: {' '.join(service.command(ctx))}\n"
        f"  log:     {service.log_file(ctx)}\n"
        f"--- last lines of the log ---\n{_log_tail(service.log_file(ctx))}"
    )


def _wait_ready(service: Service, ctx: StackContext, pid: int) -> None:
    deadline = time.monotonic() + ctx.settings.stack_ready_timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if not process.alive(pid):
            raise _failure(service, ctx, "the process exited")
        try:
            service.check(ctx)
        except Exception as exc:  # any client error means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
            continue
        return
    raise _failure(
        service, ctx, f"not ready after {ctx.settings.stack_ready_timeout_s:.0f}s ({last_error})"
    )


def _prepare_state_dir(ctx: StackContext) -> None:
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    if ctx.run_as.uid != os.geteuid():
        os.chmod(ctx.state_dir, 0o755)
        probe = ctx.state_dir
        while probe != probe.parent:
            if not os.stat(probe).st_mode & 0o001:
                raise StackError(
                    f"{probe} is not searchable by other users, so the service account "
                    f"{ctx.settings.service_user!r} cannot reach {ctx.state_dir}: set "
                    "ICONMARKET_STATE_DIR to a directory it can reach"
                )
            probe = probe.parent


def up(ctx: StackContext, names: Sequence[str] | None, report: Report) -> None:
    """Install what is missing, start what is not running, and wait until all are ready."""
    services = select(names)
    _prepare_state_dir(ctx)
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        installs = {
            service.name: pool.submit(_install, service, ctx, report) for service in services
        }
        for name, future in installs.items():
            try:
                future.result()
            except Exception as exc:
                raise StackError(f"{name}: install failed: {exc}") from exc

    started: dict[str, int] = {}
    for service in services:
        pid = running_pid(service, ctx)
        if pid is None:
            _check_port_free(service, ctx)
            ctx.service_dir(service.name).mkdir(parents=True, exist_ok=True)
            service.prepare(ctx)
            pid = process.spawn(
                service.command(ctx),
                env=service.environment(ctx),
                cwd=ctx.service_dir(service.name),
                log_file=service.log_file(ctx),
                pid_file=service.pid_file(ctx),
                run_as=ctx.run_as,
            )
            report(f"{service.name}: started (pid {pid}), waiting until ready")
        else:
            report(f"{service.name}: already running (pid {pid})")
        started[service.name] = pid

    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        waits = {
            service.name: pool.submit(_ready_and_setup, service, ctx, started[service.name], report)
            for service in services
        }
        errors = []
        for future in waits.values():
            try:
                future.result()
            except StackError as exc:
                errors.append(str(exc))
        if errors:
            raise StackError("\n\n".join(errors))


def _check_port_free(service: Service, ctx: StackContext) -> None:
    for port in [service.port(ctx), *service.other_ports(ctx)]:
        with socket.socket() as sock:
            sock.settimeout(1)
            in_use = sock.connect_ex(("127.0.0.1", port)) == 0
        if not in_use:
            continue
        raise StackError(
            f"{service.name}: port {port} is already taken by a process this stack did not start "
            f"(its pid file is {service.pid_file(ctx)}). Stop that process, or give iconmarket "
            "another port through the ICONMARKET_* settings (docs/configuration.md)."
        )


def _install(service: Service, ctx: StackContext, report: Report) -> None:
    began = time.monotonic()
    service.install(ctx)
    took = time.monotonic() - began
    if took > 1:
        report(f"{service.name}: installed {service.version} in {took:.0f}s")


def _ready_and_setup(service: Service, ctx: StackContext, pid: int, report: Report) -> None:
    began = time.monotonic()
    _wait_ready(service, ctx, pid)
    service.after_ready(ctx)
    report(f"{service.name}: ready in {time.monotonic() - began:.1f}s")


def down(ctx: StackContext, names: Sequence[str] | None, report: Report) -> None:
    """Stop exactly the processes this stack started (found through their pid files)."""
    for service in reversed(select(names)):
        pid = running_pid(service, ctx)
        if pid is None:
            report(f"{service.name}: not running")
            service.pid_file(ctx).unlink(missing_ok=True)
            continue
        killed = process.terminate(pid, service.stop_signal, service.stop_timeout_s)
        service.pid_file(ctx).unlink(missing_ok=True)
        report(f"{service.name}: stopped (pid {pid}{', killed' if killed else ''})")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    version: str
    pid: int | None
    port: int
    healthy: bool
    detail: str
    data_bytes: int


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for item in files:
            try:
                total += os.lstat(os.path.join(root, item)).st_size
            except OSError:
                continue
    return total


def _probe(service: Service, ctx: StackContext) -> tuple[bool, str]:
    began = time.monotonic()
    try:
        service.check(ctx)
    except Exception as exc:  # a failing probe is a status, not an error
        return False, f"{type(exc).__name__}: {str(exc)[:80]}"
    return True, f"ready ({(time.monotonic() - began) * 1000:.0f} ms)"


def status(ctx: StackContext, names: Sequence[str] | None = None) -> list[ServiceStatus]:
    rows = []
    for service in select(names):
        pid = running_pid(service, ctx)
        healthy, detail = _probe(service, ctx) if pid else (False, "not running")
        rows.append(
            ServiceStatus(
                name=service.name,
                version=service.version,
                pid=pid,
                port=service.port(ctx),
                healthy=healthy,
                detail=detail,
                data_bytes=_size(ctx.service_dir(service.name)),
            )
        )
    return rows


def log_lines(ctx: StackContext, name: str, lines: int) -> Iterable[str]:
    (service,) = select([name])
    path = service.log_file(ctx)
    if not path.exists():
        raise StackError(f"{name} has no log yet at {path}")
    return path.read_text(errors="replace").splitlines()[-lines:]


def log_path(ctx: StackContext, name: str) -> Path:
    (service,) = select([name])
    return service.log_file(ctx)
