"""`iconmarket init | api | run | health`: prepare the services and run the processes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console

from infra.bootstrap import bootstrap
from infra.demo import load_demo
from infra.health import check_all
from infra.provision import provision
from infra.settings import Settings, load_settings
from infra.stack import manager
from infra.stack.base import StackContext
from infra.supervisor import RestartPolicy, Supervisor


def register(commands: Any) -> None:
    init = commands.add_parser(
        "init",
        help="create event-store tables, topics and buckets (idempotent)",
        description="Create the event-store tables, Kafka topics and S3 buckets iconmarket "
        "expects. Safe to repeat.",
    )
    init.set_defaults(handler=_init)

    api = commands.add_parser(
        "api",
        help="serve the HTTP API (uvicorn)",
        description="Serve the Litestar API on ICONMARKET_API_HOST:ICONMARKET_API_PORT.",
    )
    api.set_defaults(handler=_api)

    health = commands.add_parser(
        "health",
        help="probe every dependency once and print the result as JSON",
        description="The same probes as GET /health/ready; exit 1 when any is down.",
    )
    health.set_defaults(handler=_health)

    run = commands.add_parser(
        "run",
        help="stack up, init, then run the API and workers under one supervisor",
        description="Start the local stack, provision it, then run the API and every worker as "
        "child processes. Ctrl-C (or SIGTERM) stops them all.",
    )
    run.add_argument(
        "--no-stack",
        action="store_true",
        help="do not start the local stack (use already running services)",
    )
    run.add_argument("--no-demo", action="store_true", help="do not load the demo catalog")

    demo = commands.add_parser(
        "demo",
        help="load the demo catalog (idempotent)",
        description="Register two demo accounts and load a small published catalog through the "
        "real commands: SVG originals in S3, PNG derivatives rendered, icons published. "
        "Loading twice appends nothing.",
    )
    demo_actions = demo.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = demo_actions.add_parser(
        "load", help="load the demo catalog", description="Load the demo catalog (idempotent)."
    )
    load.set_defaults(handler=_demo_load)
    run.set_defaults(handler=_run)


def _init(_args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    container = bootstrap()
    try:
        provision(container, lambda message: console.print(message, highlight=False))
    finally:
        container.close()
    console.print("init: done")
    return 0


def _api(_args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings()
    uvicorn.run(
        "api.app:app_factory",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )
    return 0


def _health(_args: argparse.Namespace) -> int:
    container = bootstrap()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = check_all(container, pool)
    container.close()
    print(json.dumps([r.__dict__ for r in results], indent=2))
    return 0 if all(r.up for r in results) else 1


def processes(settings: Settings) -> dict[str, list[str]]:
    """The long-running processes of `iconmarket run`; workers join as they are built."""
    del settings
    return {
        "api": [sys.executable, "-m", "infra.cli", "api"],
        "relay": [sys.executable, "-m", "infra.cli", "relay"],
        "projections": [sys.executable, "-m", "infra.cli", "project", "run"],
        "payments": [sys.executable, "-m", "infra.cli", "payments", "reconcile", "--loop"],
        "carts": [sys.executable, "-m", "infra.cli", "carts", "sweep", "--loop"],
        "media": [sys.executable, "-m", "infra.cli", "media", "work"],
        "imports": [sys.executable, "-m", "infra.cli", "media", "imports"],
        "staged": [sys.executable, "-m", "infra.cli", "media", "sweep-staged", "--loop"],
    }


def _run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    settings = load_settings()
    report = lambda message: console.print(message, highlight=False)  # noqa: E731
    if not args.no_stack:
        manager.up(StackContext.from_settings(settings), None, report)
    container = bootstrap(settings)
    try:
        provision(container, report)
        if not args.no_demo:
            load_demo(container, report)
    finally:
        container.close()
    return supervise(processes(settings), settings, console)


def _demo_load(_args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    container = bootstrap()
    try:
        load_demo(container, lambda message: console.print(message, highlight=False))
    finally:
        container.close()
    return 0


def _metrics_dir(settings: Settings) -> Path:
    """A fresh directory where every child writes its Prometheus metrics; /metrics sums them."""
    path = Path(settings.state_dir) / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def supervise(commands: dict[str, list[str]], settings: Settings, console: Console) -> int:
    """Run ``commands`` as children until SIGINT / SIGTERM; a child that dies is restarted
    (`infra.supervisor`), one that keeps dying stops them all with a non-zero exit."""
    from prometheus_client.multiprocess import mark_process_dead

    metrics = _metrics_dir(settings)
    supervisor = Supervisor(
        commands,
        RestartPolicy.from_settings(settings),
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
        report=lambda line: console.print(line, highlight=False),
        # A dead child's live gauges (relay_active, lags) must not be summed with its successor's.
        reaped=lambda pid: mark_process_dead(pid, str(metrics)),  # type: ignore[no-untyped-call]
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    base = f"http://{settings.api_host}:{settings.api_port}"
    console.print(
        f"\n[bold]iconmarket is running[/]  (Ctrl-C stops everything)\n"
        f"  API docs   {base}/schema\n  health     {base}/health/ready\n"
        f"  metrics    {base}/metrics\n  processes  {', '.join(commands)}\n",
        highlight=False,
    )
    return supervisor.run(stop)
