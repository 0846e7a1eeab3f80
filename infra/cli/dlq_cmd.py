"""`iconmarket dlq list | replay`: inspect dead letters and put them back on their topic."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from infra.bootstrap import bootstrap
from stream.dlq import (
    DeadLetter,
    DeadLetterError,
    KafkaPublisher,
    read_dead_letters,
    replay_headers,
)
from stream.topics import CONTEXTS, topic_for


def register(commands: Any) -> None:
    dlq = commands.add_parser(
        "dlq",
        help="list or replay dead-lettered messages",
        description="Messages a consumer could not process after its maximum attempts are copied "
        "to <topic>.dlq with the error and their original coordinates. List them, or replay "
        "chosen ones to their source topic once the cause is fixed.",
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

    replay = actions.add_parser(
        "replay",
        help="re-produce dead letters to their source topic",
        description="Re-produce the chosen messages of <topic>.dlq to <topic> with their original "
        "key, value and headers plus dlq_replayed_from=<dlq topic>/<partition>/<offset>, and "
        "print one JSON line per replayed message. Nothing is produced unless every chosen "
        "offset was found.",
    )
    replay.add_argument("--topic", required=True, help="source topic (its DLQ is <topic>.dlq)")
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument(
        "--offset",
        nargs="+",
        metavar="[PARTITION:]OFFSET",
        help="DLQ offsets to replay (as `dlq list` prints them; PARTITION: when ambiguous)",
    )
    chosen.add_argument("--all", action="store_true", help="replay every message in the DLQ")
    replay.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to read the DLQ for (default 10)"
    )
    replay.set_defaults(handler=_replay)


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


def choose(letters: list[DeadLetter], specs: list[str]) -> list[DeadLetter]:
    """The letters named by ``specs`` (``OFFSET`` or ``PARTITION:OFFSET``), in the given order.

    Raises ValueError naming the spec that matches none, or several partitions.
    """
    chosen: list[DeadLetter] = []
    for spec in specs:
        partition_text, _, offset_text = spec.rpartition(":")
        try:
            offset = int(offset_text)
            partition = int(partition_text) if partition_text else None
        except ValueError:
            raise ValueError(f"{spec!r} is not OFFSET or PARTITION:OFFSET") from None
        matches = [
            letter
            for letter in letters
            if letter.dlq_offset == offset and partition in (None, letter.dlq_partition)
        ]
        if not matches:
            raise ValueError(f"no dead letter at {spec}")
        if len(matches) > 1:
            found = ", ".join(f"{m.dlq_partition}:{m.dlq_offset}" for m in matches)
            raise ValueError(f"offset {spec} is in several partitions ({found}): use PARTITION:")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def _replay(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    settings = bootstrap().settings
    try:
        read = read_dead_letters(settings, args.topic, args.timeout)
        if not read.complete:
            return _fail(f"{args.topic}.dlq not read to its end within {args.timeout}s")
        letters = read.letters if args.all else choose(read.letters, args.offset)
        publisher = KafkaPublisher(settings, "iconmarket-dlq-replay")
        try:
            for letter in letters:
                headers = replay_headers(
                    letter.headers, letter.dlq_topic, letter.dlq_partition, letter.dlq_offset
                )
                written = publisher.publish(args.topic, letter.key, letter.value, headers)
                replayed = {
                    "replayed_from": f"{letter.dlq_topic}/{letter.dlq_partition}/"
                    f"{letter.dlq_offset}",
                    "topic": written.topic,
                    "partition": written.partition,
                    "offset": written.offset,
                    "event_type": letter.event_field("event_type", "type"),
                    "event_id": letter.event_field("event_id", "event_id"),
                }
                print(json.dumps(replayed), flush=True)
        finally:
            publisher.close()
    except (DeadLetterError, KafkaError, ValueError) as exc:
        return _fail(str(exc))
    print(f"replayed {len(letters)} message(s) to {args.topic}", file=sys.stderr)
    return 0
