"""`iconmarket payments reconcile [--loop]`: resolve payment attempts left pending."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
from typing import Any

from rich.console import Console
from rich.progress import Progress

from commands.payments.reconcile import PendingTransactions, ReconcileReport, reconcile
from infra.bootstrap import Container, bootstrap
from infra.cli.periodic import every
from infra.logs import configure

log = logging.getLogger("iconmarket.payments")


def register(commands: Any) -> None:
    payments = commands.add_parser(
        "payments",
        help="payment operations (reconciliation with Stripe)",
        description="Payment operations against the configured Stripe API.",
    )
    actions = payments.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "reconcile",
        help="ask Stripe about payment attempts pending too long and record the outcome",
        description="Find payment attempts pending longer than --older-than seconds, ask Stripe "
        "for their PaymentIntent and record what happened: paid (the order is fulfilled), "
        "failed or abandoned (the intent is cancelled; the customer may pay again). With "
        "--loop, repeat every ICONMARKET_PAYMENT_RECONCILE_INTERVAL_S until SIGTERM or Ctrl-C.",
    )
    run.add_argument(
        "--older-than",
        type=float,
        default=None,
        help="age in seconds (default: ICONMARKET_PAYMENT_PENDING_TIMEOUT_S)",
    )
    run.add_argument("--loop", action="store_true", help="keep reconciling periodically")
    run.set_defaults(handler=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    container = bootstrap()
    configure(container.settings.log_level)
    age = dt.timedelta(
        seconds=args.older_than
        if args.older_than is not None
        else container.settings.payment_pending_timeout_s
    )
    try:
        if args.loop:
            _loop(container, age)
            return 0
        report = _once(container, PendingTransactions(), age)
    finally:
        container.close()
    Console(stderr=True).print(
        f"reconcile: {report.checked} checked, {report.settled} paid, {report.failed} failed, "
        f"{report.still_pending} still processing; failed attempts' intents: "
        f"{report.cancelled} cancelled, {report.late_captures} captured late"
        + ("; Stripe unavailable, the rest waits" if report.unavailable else ""),
        highlight=False,
    )
    return 1 if report.unavailable else 0


def _once(container: Container, pending: PendingTransactions, age: dt.timedelta) -> ReconcileReport:
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("reconciling payments", total=None)

        def advance(total: int) -> None:
            progress.update(task, total=total, advance=1)

        return reconcile(
            container.bus, container.payment_provider, pending, older_than=age, advance=advance
        )


def _loop(container: Container, age: dt.timedelta) -> None:
    pending = PendingTransactions()

    def one_pass() -> None:
        report = reconcile(container.bus, container.payment_provider, pending, older_than=age)
        if report.checked or report.cancelled or report.late_captures or report.unavailable:
            log.info("payments reconciled", extra=dataclasses.asdict(report))

    every(container.settings.payment_reconcile_interval_s, one_pass, "payment reconciliation", log)
