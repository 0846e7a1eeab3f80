"""`iconmarket carts sweep [--loop]`: expire open carts left idle past the cart TTL."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from rich.console import Console
from rich.progress import Progress

from infra.bootstrap import Container, bootstrap
from infra.cart_sweep import SweepReport, live_view, sweep
from infra.cli.periodic import every
from infra.logs import configure

log = logging.getLogger("iconmarket.carts")


def register(commands: Any) -> None:
    carts = commands.add_parser(
        "carts",
        help="cart operations (expiry of idle carts)",
        description="Cart operations on the event store and the live cart view.",
    )
    actions = carts.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "sweep",
        help="record Cart.Expired for open carts idle longer than the cart TTL",
        description="Find open carts whose last change is older than ICONMARKET_CART_TTL_S "
        "seconds in the live cart view and expire them (Cart.Expired, as the service role); "
        "the cart itself decides by its last event's time, so a cart changed meanwhile stays "
        "open. With --loop, repeat every ICONMARKET_CART_SWEEP_INTERVAL_S until SIGTERM or "
        "Ctrl-C.",
    )
    run.add_argument("--loop", action="store_true", help="keep sweeping periodically")
    run.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    container = bootstrap()
    configure(container.settings.log_level)
    try:
        if args.loop:
            _loop(container)
            return 0
        report = _once(container)
    finally:
        container.close()
    Console(stderr=True).print(
        f"sweep: {report.expired} carts expired, {report.refused} refused (the view was behind; "
        "looked at again next pass)",
        highlight=False,
    )
    return 0


def _once(container: Container) -> SweepReport:
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("expiring idle carts", total=None)
        return sweep(
            container.bus,
            live_view(container.redis),
            ttl_s=container.settings.cart_ttl_s,
            advance=lambda: progress.advance(task),
        )


def _loop(container: Container) -> None:
    settings = container.settings

    def one_pass() -> None:
        report = sweep(container.bus, live_view(container.redis), ttl_s=settings.cart_ttl_s)
        if report.expired or report.refused:
            log.info("idle carts swept", extra=dataclasses.asdict(report))

    every(settings.cart_sweep_interval_s, one_pass, "cart sweep", log)
