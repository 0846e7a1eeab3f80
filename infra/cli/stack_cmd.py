"""`iconmarket stack ...`: run the real services locally, without Docker."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.settings import load_settings
from infra.stack import manager
from infra.stack.base import StackContext

SERVICE_NAMES = [service.name for service in manager.SERVICES]


def register(commands: Any) -> None:
    stack = commands.add_parser(
        "stack",
        help="run the local service stack (PostgreSQL, Redis, Kafka, OpenSearch, S3, stripe-mock, "
        "Mailpit)",
        description="Install, start, stop and inspect the real services iconmarket needs, as "
        "local processes bound to loopback. Data lives in ICONMARKET_STATE_DIR.",
    )
    actions = stack.add_subparsers(dest="action", required=True, metavar="ACTION")

    up = actions.add_parser(
        "up",
        help="install what is missing, start what is stopped, wait until every service is ready",
        description="Install (cached), start and wait for readiness. Harmless to run twice.",
    )
    up.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help=f"only these services (default: all of {', '.join(SERVICE_NAMES)})",
    )
    up.set_defaults(handler=_up)

    down = actions.add_parser(
        "down",
        help="stop the services this stack started (by pid file)",
        description="Stop exactly the processes the stack started; data is kept.",
    )
    down.add_argument(
        "services", nargs="*", metavar="SERVICE", help="only these services (default: all)"
    )
    down.set_defaults(handler=_down)

    status = actions.add_parser(
        "status",
        help="a table of service, version, pid, port, health and data size",
        description="Probe every service with its own protocol and print a table.",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=_status)

    logs = actions.add_parser(
        "logs",
        help="print (or follow) one service's log",
        description="Print the last lines of a service's log file.",
    )
    logs.add_argument(
        "service",
        choices=SERVICE_NAMES,
        metavar="SERVICE",
        help=f"one of {', '.join(SERVICE_NAMES)}",
    )
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.set_defaults(handler=_logs)


def _context() -> StackContext:
    return StackContext.from_settings(load_settings())


def _reporter(console: Console) -> Any:
    return lambda message: console.print(message, highlight=False)


def _up(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    ctx = _context()
    manager.up(ctx, args.services, _reporter(console))
    _print_table(manager.status(ctx, args.services or None))
    return 0


def _down(args: argparse.Namespace) -> int:
    manager.down(_context(), args.services, _reporter(Console(stderr=True)))
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _print_table(rows: list[manager.ServiceStatus]) -> None:
    table = Table(title="iconmarket stack")
    for column in ("service", "version", "pid", "port", "health", "data"):
        table.add_column(column)
    for row in rows:
        health = f"[green]{row.detail}[/]" if row.healthy else f"[red]{row.detail}[/]"
        table.add_row(
            row.name,
            row.version,
            str(row.pid or "-"),
            str(row.port),
            health,
            _human(row.data_bytes),
        )
    Console().print(table)


def _status(args: argparse.Namespace) -> int:
    rows = manager.status(_context())
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
    else:
        _print_table(rows)
    return 0 if all(row.healthy for row in rows) else 1


def _logs(args: argparse.Namespace) -> int:
    ctx = _context()
    if args.follow:
        path = manager.log_path(ctx, args.service)
        return subprocess.call(["tail", "-n", str(args.lines), "-F", str(path)])
    for line in manager.log_lines(ctx, args.service, args.lines):
        sys.stdout.write(line + "\n")
    return 0
