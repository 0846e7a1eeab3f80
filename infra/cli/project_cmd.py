"""`iconmarket project run | status`: the projection workers (each on the consumer runner)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.bootstrap import Container, bootstrap
from infra.cli.progress import event_progress
from infra.logs import configure
from infra.rebuild import rebuild
from infra.targets import apply_live, target_for
from projections.positions import ProjectionPositions, highest_positions, next_offsets
from stream.consumer import ConsumerRunner, Delivery, serve
from stream.topics import topic_for


@dataclass(frozen=True)
class ProjectionSpec:
    """A projection: its name, the logs (bounded contexts) it reads, its consumer group."""

    name: str
    contexts: tuple[str, ...]
    batch_size: int = 500

    @property
    def group_id(self) -> str:
        return f"projection-{self.name}"


SPECS = {
    spec.name: spec
    for spec in (
        ProjectionSpec("carts", ("commerce",)),
        ProjectionSpec("customers", ("commerce",)),
        ProjectionSpec("catalog", ("catalog",), batch_size=2_000),
        ProjectionSpec("popularity", ("commerce",), batch_size=2_000),
    )
}
PROJECTIONS = tuple(SPECS)


def register(commands: Any) -> None:
    project = commands.add_parser(
        "project",
        help="run projections (read models built from the event stream) and show their state",
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
    status = actions.add_parser(
        "status",
        help="each projection's position, lag and state",
        description="Per projection and source log: the last position applied, the log's head, "
        "the lag between them (events) and the consumer group's state.",
    )
    status.set_defaults(handler=_status)
    rebuild_cmd = actions.add_parser(
        "rebuild",
        help="rebuild a projection from history into a new index / key space, then switch",
        description="Replays the event store's history into a new target (catalog: index "
        "catalog-v{n+1}; carts: key prefix carts-v{n}:) while the live one keeps serving and "
        "updating, catches up with the log's head, then switches the alias / prefix pointer "
        "atomically. The previous target is kept; its name is printed.",
    )
    rebuild_cmd.add_argument("name", metavar="NAME", choices=PROJECTIONS, help=str(PROJECTIONS))
    rebuild_cmd.set_defaults(handler=_rebuild)
    prune = actions.add_parser(
        "prune",
        help="list (or with --delete, delete) a projection's earlier rebuild targets",
        description="A rebuild keeps the target it replaced. This lists every generation that "
        "is not live (catalog: indices catalog-v{n} the alias does not name; Redis projections: "
        "key prefixes {name}-v{n}: the pointer does not name); --delete removes them.",
    )
    prune.add_argument("name", metavar="NAME", choices=PROJECTIONS, help=str(PROJECTIONS))
    prune.add_argument("--delete", action="store_true", help="delete them (default: list only)")
    prune.set_defaults(handler=_prune)


def _checked(names: Sequence[str]) -> list[ProjectionSpec]:
    unknown = sorted(set(names) - set(PROJECTIONS))
    if unknown:
        raise SystemExit(f"unknown projection(s) {unknown}; known: {list(PROJECTIONS)}")
    return [SPECS[name] for name in names or PROJECTIONS]


def runner(container: Container, spec: ProjectionSpec) -> ConsumerRunner:
    """A projection on the consumer runner: the view write (to the live target), then the
    positions it reached."""
    target = target_for(spec.name, container.redis, container.opensearch)
    positions = ProjectionPositions(container.redis)

    def project(deliveries: Sequence[Delivery], /) -> None:
        events = [delivery.event for delivery in deliveries]
        apply_live(target, events)
        positions.record(spec.name, highest_positions(events), next_offsets(deliveries))

    return ConsumerRunner(
        container.settings,
        group_id=spec.group_id,
        topics=[topic_for(context) for context in spec.contexts],
        handler=project,
        batch_size=spec.batch_size,
    )


def _run(args: argparse.Namespace) -> int:
    specs = _checked(args.names)
    container = bootstrap()
    configure(container.settings.log_level)
    try:
        serve([runner(container, spec) for spec in specs])
    finally:
        container.close()
    return 0


def _group_states(container: Container, groups: list[str]) -> dict[str, str]:
    """Each consumer group's state as the broker reports it (e.g. stable, empty, dead)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": container.settings.kafka_bootstrap})
    states: dict[str, str] = {}
    for group, future in admin.describe_consumer_groups(groups, request_timeout=10).items():
        try:
            states[group] = future.result().state.name.lower()
        except KafkaException as exc:
            states[group] = f"unknown ({exc})"
    return states


def _status(_args: argparse.Namespace) -> int:
    container = bootstrap()
    try:
        positions = ProjectionPositions(container.redis)
        states = _group_states(container, [spec.group_id for spec in SPECS.values()])
        table = Table(title="projections")
        for column in ("projection", "log", "position", "log head", "lag (events)", "group"):
            table.add_column(column)
        for spec in SPECS.values():
            applied = positions.get(spec.name)
            for context in spec.contexts:
                head = container.applications.by_context(context).recorder.max_notification_id()
                position = applied.get(context)
                lag = (head or 0) - (position or 0)
                table.add_row(
                    spec.name,
                    context,
                    str(position) if position is not None else "-",
                    str(head) if head is not None else "-",
                    str(lag),
                    states.get(spec.group_id, "unknown"),
                )
        Console().print(table)
    finally:
        container.close()
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    spec = SPECS[args.name]
    container = bootstrap()
    configure(container.settings.log_level)
    console = Console(stderr=True)
    try:
        with event_progress(console) as update:
            result = rebuild(
                container,
                spec.contexts,
                target_for(spec.name, container.redis, container.opensearch),
                update,
                label=f"rebuild {spec.name}",
            )
        print(
            f"{spec.name}: rebuilt {result.events} events into {result.new_target!r} in "
            f"{result.seconds:.1f} s ({result.rate:,.0f} events/s) and switched to it; the "
            f"previous target {result.old_target!r} is kept"
        )
    finally:
        container.close()
    return 0


def _prune(args: argparse.Namespace) -> int:
    from projections.catalog_alias import stale_indices
    from projections.keyspace import delete_prefix, stale_prefixes

    container = bootstrap()
    try:
        if args.name == "catalog":
            stale = stale_indices(container.opensearch)
        else:
            stale = stale_prefixes(container.redis, args.name)
        if not stale:
            print(f"{args.name}: no earlier targets")
            return 0
        for target in stale:
            if not args.delete:
                print(f"{args.name}: {target!r} is not live (delete with --delete)")
            elif args.name == "catalog":
                container.opensearch.indices.delete(index=target)
                print(f"{args.name}: deleted index {target!r}")
            else:
                print(
                    f"{args.name}: deleted {delete_prefix(container.redis, target)} keys "
                    f"under {target!r}"
                )
    finally:
        container.close()
    return 0
