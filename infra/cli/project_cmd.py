"""`iconmarket project run`: the projection workers (each on the consumer runner)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from infra.bootstrap import bootstrap
from infra.logs import configure
from projections.cart_view import RedisCartView
from projections.carts import apply
from stream.consumer import ConsumerRunner, Delivery, serve
from stream.topics import topic_for

PROJECTIONS = ("carts",)


def register(commands: Any) -> None:
    project = commands.add_parser(
        "project",
        help="run projections (read models built from the event stream)",
        description="Projections consume the Kafka topics and write the read models.",
    )
    actions = project.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="run projection workers until SIGTERM or Ctrl-C",
        description="Consume and project until stopped; each projection is its own consumer "
        "group, so it resumes where it stopped.",
    )
    run.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {PROJECTIONS}")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.names) - set(PROJECTIONS))
    if unknown:
        raise SystemExit(f"unknown projection(s) {unknown}; known: {list(PROJECTIONS)}")
    container = bootstrap()
    configure(container.settings.log_level)
    view = RedisCartView(container.redis)

    def project_carts(deliveries: Sequence[Delivery], /) -> None:
        view.apply([write for delivery in deliveries for write in apply(delivery.event)])

    runner = ConsumerRunner(
        container.settings,
        group_id="projection-carts",
        topics=[topic_for("commerce")],
        handler=project_carts,
    )
    try:
        serve([runner])
    finally:
        container.close()
    return 0
