"""`iconmarket stream tail`: print a topic's envelopes as JSON lines (no consumer group)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import Any, Protocol, TextIO

import msgspec

from infra.bootstrap import bootstrap
from stream.envelope import decode, encode
from stream.schemas import event_types
from stream.topics import CONTEXTS, topic_for


class Record(Protocol):
    """What tail reads of a Kafka record (kafka-python's ConsumerRecord has it)."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes: ...

    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


def register(commands: Any) -> None:
    stream = commands.add_parser(
        "stream",
        help="read the Kafka event stream",
        description="Read iconmarket's Kafka topics the way an analyst's consumer would.",
    )
    actions = stream.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = actions.add_parser(
        "tail",
        help="print a topic's event envelopes as JSON lines",
        description="Consume a topic without a consumer group (nothing is committed) and print "
        "each envelope as published, one JSON object per line. Filters on the event_type "
        "header. Runs until Ctrl-C, or until --limit envelopes were printed, or until no "
        f"message arrived for --timeout seconds. Topics: {', '.join(map(topic_for, CONTEXTS))}.",
    )
    tail.add_argument(
        "--topic", required=True, help="the topic to read, e.g. iconmarket.catalog.v1"
    )
    tail.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the oldest retained message (default: only new messages)",
    )
    tail.add_argument(
        "--type",
        dest="types",
        action="extend",
        nargs="+",
        metavar="TYPE",
        help="print only these event types, e.g. Icon.Published (repeatable)",
    )
    tail.add_argument(
        "--limit", type=_positive(int), metavar="N", help="exit after printing N envelopes"
    )
    tail.add_argument(
        "--timeout",
        type=_positive(float),
        metavar="S",
        help="exit after S seconds without a message (default: wait forever)",
    )
    tail.set_defaults(handler=_tail)


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def tail(
    records: Iterable[Record],
    *,
    types: frozenset[str],
    limit: int | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Print the envelopes of ``records`` whose type is in ``types`` (all when empty).

    Returns how many were printed. A message that is not an envelope is reported on ``err``.
    """
    printed = 0
    for record in records:
        if types and _header(record, "event_type") not in types:
            continue
        try:
            envelope = decode(record.value)
        except msgspec.MsgspecError as exc:
            print(f"skipped partition {record.partition} offset {record.offset}: {exc}", file=err)
            continue
        print(encode(envelope).decode(), file=out, flush=True)
        printed += 1
        if printed == limit:
            break
    return printed


def _header(record: Record, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode()
    return None


def _consumer(
    bootstrap_servers: str, topic: str, *, from_beginning: bool, idle_s: float | None
) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        client_id="iconmarket-stream-tail",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        consumer_timeout_ms=float("inf") if idle_s is None else int(idle_s * 1000),
    )


def _tail(args: argparse.Namespace) -> int:
    types = frozenset(args.types or ())
    unknown = types - {event_type.name for event_type in event_types()}
    if unknown:
        print(f"warning: no such event type(s): {', '.join(sorted(unknown))}", file=sys.stderr)
    settings = bootstrap().settings
    consumer = _consumer(
        settings.kafka_bootstrap,
        args.topic,
        from_beginning=args.from_beginning,
        idle_s=args.timeout,
    )
    try:
        tail(consumer, types=types, limit=args.limit, out=sys.stdout, err=sys.stderr)
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, and keep Python's exit flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        consumer.close()
    return 0
