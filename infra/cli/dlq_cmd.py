"""`iconmarket dlq list | parked | replay | skip`: inspect dead letters, release parked events."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from infra.bootstrap import bootstrap
from stream.dlq import DeadLetterError, read_dead_letters
from stream.parking import Action, ParkedEvent, PostgresParkingLot
from stream.topics import CONTEXTS, topic_for


def register(commands: Any) -> None:
    dlq = commands.add_parser(
        "dlq",
        help="list dead letters; replay or skip parked events",
        description="An event a consumer group cannot process after its maximum attempts is "
        "parked in that group with every later event of its key, and copied to <topic>.dlq with "
        "the error and its original coordinates. List the copies, list what a group has parked, "
        "and replay or skip a group's parked events once the cause is understood.",
    )
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list",
        help="print dead letters as JSON lines",
        description="Print the dead-lettered messages of a source topic's DLQ (default: every "
        "iconmarket topic), oldest first, one JSON object per line: DLQ and source coordinates, "
        "attempts, error, event type and event id. Exits 1 if the DLQ could not be read to its "
        "end within --timeout.",
    )
    listing.add_argument(
        "--topic", help="source topic whose DLQ to read (default: all iconmarket topics)"
    )
    listing.add_argument("--limit", type=int, help="print at most N dead letters per topic")
    listing.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to read for (default 10)"
    )
    listing.set_defaults(handler=_list)

    parked = actions.add_parser(
        "parked",
        help="print the events parked per consumer group, as JSON lines",
        description="A consumer group parks an event that fails for good together with every "
        "later event of its key, so none of them is applied out of order. This prints them "
        "(group, key, source coordinates, error, what each is parked behind), oldest first.",
    )
    parked.add_argument("--group", required=True, help="consumer group, e.g. projection-carts")
    parked.set_defaults(handler=_parked)

    for action, text in (
        ("replay", "apply a group's parked events again, in key order, once the cause is fixed"),
        ("skip", "drop a group's parked events of a key for good (recorded with who and why)"),
    ):
        sub = actions.add_parser(
            action,
            help=text,
            description=f"Ask the consumer group's runner to {text}. The request is stored with "
            "who asked and why, carried out by the running group between two batches (a replay "
            "stops at the first event that still fails: that key stays parked), and its outcome "
            "printed as JSON. Nothing is requested when nothing matching is parked. Exits 1 if "
            "the outcome did not come within --wait (the request stays pending and is carried "
            "out when the group runs).",
        )
        sub.add_argument("--group", required=True, help="consumer group whose events to release")
        keys = sub.add_mutually_exclusive_group(required=True)
        keys.add_argument("--key", nargs="+", help="the parked keys (aggregate ids)")
        if action == "replay":
            keys.add_argument("--all", action="store_true", help="every parked key of the group")
        sub.add_argument(
            "--reason", required=action == "skip", default="", help="why (required for skip)"
        )
        sub.add_argument(
            "--by", default=f"cli:{getpass.getuser()}", help="who asks (default: cli:<user>)"
        )
        sub.add_argument(
            "--wait", type=float, default=60.0, help="seconds to wait for the outcome (default 60)"
        )
        sub.set_defaults(handler=_request, action_name=action)


def _fail(message: str) -> int:
    print(f"iconmarket dlq: {message}", file=sys.stderr)
    return 1


def _list(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    settings = bootstrap().settings
    topics = [args.topic] if args.topic else [topic_for(context) for context in CONTEXTS]
    try:
        for topic in topics:
            read = read_dead_letters(settings, topic, args.timeout, args.limit)
            for letter in read.letters:
                print(json.dumps(letter.summary()), flush=True)
            if not read.complete:
                return _fail(f"{topic}.dlq not read to its end within {args.timeout}s")
    except (DeadLetterError, KafkaError) as exc:
        return _fail(str(exc))
    return 0


def _parked(args: argparse.Namespace) -> int:
    lot = PostgresParkingLot(bootstrap().settings)
    try:
        for event in lot.entries(args.group):
            print(json.dumps(_summary(event)), flush=True)
    finally:
        lot.close()
    return 0


def _summary(event: ParkedEvent) -> dict[str, Any]:
    return {
        "group": event.group_id,
        "key": event.key.decode(errors="replace") if event.key is not None else None,
        "source": event.coordinates,
        "error": event.error,
        "attempts": event.attempts,
        "parked_behind": event.behind,
    }


def _request(args: argparse.Namespace) -> int:
    action: Action = args.action_name
    lot = PostgresParkingLot(bootstrap().settings)
    try:
        parked = lot.entries(args.group)
        keys: list[bytes | None] = [None] if args.key is None else [k.encode() for k in args.key]
        missing = [k for k in keys if k is not None and all(e.key != k for e in parked)]
        if not parked or missing:
            named = ", ".join(k.decode() for k in missing if k is not None) or "any key"
            return _fail(f"nothing parked in group {args.group} for {named}; nothing requested")
        requests = [lot.request(args.group, action, key, args.by, args.reason) for key in keys]
        deadline = time.monotonic() + args.wait
        pending = list(requests)
        while pending:
            for request in list(pending):
                outcome = lot.outcome(request)
                if outcome is not None:
                    print(json.dumps({"request": request, **outcome}), flush=True)
                    pending.remove(request)
            if pending and time.monotonic() >= deadline:
                return _fail(
                    f"request(s) {pending} not carried out within {args.wait}s: they stay "
                    f"pending until a runner of group {args.group} picks them up"
                )
            if pending:
                time.sleep(0.2)
    finally:
        lot.close()
    return 0
