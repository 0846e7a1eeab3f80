"""`iconmarket relay`: publish the event store's logs to Kafka (one active relay per log)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from infra.bootstrap import bootstrap
from infra.logs import configure
from stream.relay import Relay, RelayPositions, run_relays
from stream.topics import CONTEXTS


def register(commands: Any) -> None:
    relay = commands.add_parser(
        "relay",
        help="publish the event logs to Kafka (at-least-once, one active relay per log)",
        description="Tail each bounded context's notification log from its saved position and "
        "publish every event to its Kafka topic. A second relay process waits as a standby and "
        "takes over when the active one dies. SIGTERM or Ctrl-C stops it after the batch.",
    )
    relay.add_argument(
        "--context",
        choices=[*CONTEXTS, "all"],
        default="all",
        help="which log to relay (default: all three, one thread each)",
    )
    relay.add_argument("--topic", help="publish to this topic instead (one context only)")
    relay.add_argument(
        "--log-name", help="name under which the position is saved (one context only)"
    )
    relay.add_argument(
        "--start-after",
        type=int,
        help="position to start after when none is saved yet (default 0: the whole history)",
    )
    relay.add_argument("--batch-size", type=int, default=2000, help="events per flush")
    relay.add_argument(
        "--parked",
        action="store_true",
        help="print the notifications the relay parked (could never be produced) as JSON lines "
        "and exit: log, position, aggregate, version, error (all logs, or --log-name's)",
    )
    relay.set_defaults(handler=_relay)


def _parked(log_name: str | None) -> int:
    import psycopg

    from infra.settings import load_settings

    with psycopg.connect(load_settings().postgres_dsn, autocommit=True) as conn:
        for entry in RelayPositions(conn).parked(log_name):
            print(json.dumps(entry.summary()), flush=True)
    return 0


def _relay(args: argparse.Namespace) -> int:
    if args.parked:
        return _parked(args.log_name)
    container = bootstrap()
    configure(container.settings.log_level)
    contexts = list(CONTEXTS) if args.context == "all" else [args.context]
    if (args.topic or args.log_name) and len(contexts) != 1:
        raise SystemExit("--topic and --log-name need a single --context")
    relays = [
        Relay(
            container.applications.by_context(context),
            container.settings,
            topic=args.topic,
            log_name=args.log_name,
            start_after=args.start_after,
            batch_size=args.batch_size,
        )
        for context in contexts
    ]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        run_relays(relays, stop)
    finally:
        container.close()
    return 0
