"""`iconmarket audit verify | checkpoint | replay | diff | drop | export`: prove the history."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.audit.history import CONTEXT_NAMES, LogFilter
from infra.bootstrap import bootstrap
from infra.cli.progress import event_progress
from infra.cli.project_cmd import PROJECTIONS, SPECS

DEFAULT_OUT = Path(".audit")


def register(commands: Any) -> None:
    audit = commands.add_parser(
        "audit",
        help="verify the tamper-evidence chain, replay and diff read models, export history",
        description="Tools for auditors; see docs/audit.md.",
    )
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    _register_verify(actions)
    _register_replay(actions)
    _register_export(actions)


def _contexts_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--context",
        action="append",
        choices=CONTEXT_NAMES,
        metavar="CONTEXT",
        help=f"{what} only this log (repeatable); default: all of {list(CONTEXT_NAMES)}",
    )


def _projections_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--projection",
        action="append",
        choices=PROJECTIONS,
        metavar="NAME",
        help=f"only this projection (repeatable); default: all of {list(PROJECTIONS)}",
    )


def _register_verify(actions: Any) -> None:
    verify = actions.add_parser(
        "verify",
        help="recompute every hash chain; exit 1 naming each break",
        description="Recompute every aggregate's hash chain and each log's running hash in "
        "Python, compare them with the stored hashes and the checkpoints, and report every "
        "break (aggregate, version, position). Exit 0 when clean, 1 otherwise. A clean run "
        "records a checkpoint of each log's head (unless --no-checkpoint).",
    )
    _contexts_option(verify, "verify")
    verify.add_argument("--no-checkpoint", action="store_true", help="record no checkpoint")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=_verify, checkpoint=False)
    checkpoint = actions.add_parser(
        "checkpoint",
        help="verify, then record each log's head hash as a checkpoint",
        description="The same pass as verify; when clean, record (context, position, head "
        "hash, event count) in audit_checkpoints. Run it regularly (cron): a later deletion or "
        "rewrite before a checkpoint's position is then caught. Exit 1 when not clean.",
    )
    _contexts_option(checkpoint, "checkpoint")
    checkpoint.add_argument("--json", action="store_true", help="print the report as JSON")
    checkpoint.set_defaults(handler=_verify, checkpoint=True, no_checkpoint=False)


def _register_replay(actions: Any) -> None:
    replay = actions.add_parser(
        "replay",
        help="rebuild read models as of a point in history into named shadow targets",
        description="Replay each log up to --until into shadow targets named --into (Redis "
        "key prefix audit:<name>:<projection>:, index catalog-audit-<name>), with the live "
        "projectors; nothing live is switched. --until is a time (ISO 8601 with a zone: each "
        "log up to its last event at or before it), positions per log "
        "(catalog:123,commerce:456; positions are per log), or head.",
    )
    replay.add_argument("--until", required=True, help="a time, log:position pairs, or head")
    replay.add_argument("--into", required=True, metavar="NAME", help="the shadow's name")
    _projections_option(replay)
    replay.set_defaults(handler=_replay)
    diff = actions.add_parser(
        "diff",
        help="compare a shadow with the live read models (or two shadows); write a report",
        description="Compare shadow A with the live read models, or with shadow B: document "
        "counts per projection, documents on one side only, and changed documents field by "
        "field. Writes <A>-vs-<B>.json and .md under --out. Exit 1 when anything differs.",
    )
    diff.add_argument("left", metavar="A", help="a shadow name (or 'live')")
    diff.add_argument("right", metavar="B", nargs="?", default="live", help="default: live")
    diff.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}/")
    _projections_option(diff)
    diff.set_defaults(handler=_diff)
    drop = actions.add_parser(
        "drop",
        help="delete a shadow's key space and index",
        description="Delete the shadow targets named NAME (never a live one).",
    )
    drop.add_argument("name", metavar="NAME")
    _projections_option(drop)
    drop.set_defaults(handler=_drop)


def _register_export(actions: Any) -> None:
    export = actions.add_parser(
        "export",
        help="write the history as JSON lines of public envelopes to stdout",
        description="Stream every event (or those with since <= event time < until) as one "
        "public envelope per line, log after log, each in position order; progress on stderr.",
    )
    export.add_argument("--since", help="ISO 8601 time with a zone (inclusive)")
    export.add_argument("--until", help="ISO 8601 time with a zone (exclusive)")
    _contexts_option(export, "export")
    export.set_defaults(handler=_export)


def _format(until: dict[str, int]) -> str:
    return ",".join(f"{context}:{position}" for context, position in until.items())


def _record(container: Any, operation: str, target: str, options: dict[str, Any]) -> None:
    """Record a command-line read of the history in the audit log, like the API's reads; the
    actor is the operating-system user."""
    from infra.audit.access import record_access

    parameters = {
        key: value
        for key, value in options.items()
        if key not in {"handler", "command", "action"} and value not in (None, False)
    }
    record_access(
        container.audit_application,
        actor=f"cli:{getpass.getuser()}",
        roles=frozenset({"operator"}),
        operation=operation,
        target=target,
        parameters=parameters,
        correlation_id=uuid.uuid4().hex,
    )


def _verify(args: argparse.Namespace) -> int:
    from infra.audit.verify import verify_context, write_checkpoint

    container = bootstrap()
    console = Console(stderr=True)
    contexts = args.context or list(CONTEXT_NAMES)
    dsn = container.settings.postgres_dsn
    # Building the applications creates any missing table (a fresh store verifies clean).
    container.applications  # noqa: B018
    container.audit_application  # noqa: B018
    verdicts = []
    try:
        with event_progress(console) as update:
            verdicts = [verify_context(dsn, context, update) for context in contexts]
    finally:
        container.close()
    recorded = {
        v.context: write_checkpoint(dsn, v)
        for v in verdicts
        if (args.checkpoint or not args.no_checkpoint) and v.clean
    }
    breaks = [b for v in verdicts for b in v.breaks]
    if args.json:
        print(json.dumps(_verify_report(verdicts, recorded), indent=2))
    else:
        _print_verdicts(verdicts, recorded)
    return 1 if breaks else 0


def _verify_report(verdicts: Sequence[Any], recorded: dict[str, bool]) -> dict[str, Any]:
    return {
        "clean": all(v.clean for v in verdicts),
        "logs": [
            {
                "context": v.context,
                "head": v.head,
                "events": v.events,
                "head_hash": v.head_hash.hex(),
                "seconds": round(v.seconds, 3),
                "events_per_s": round(v.rate),
                "checkpoints_checked": v.checkpoints_checked,
                "checkpoint_recorded": recorded.get(v.context, False),
            }
            for v in verdicts
        ],
        "breaks": [asdict(b) for v in verdicts for b in v.breaks],
    }


def _print_verdicts(verdicts: Sequence[Any], recorded: dict[str, bool]) -> None:
    table = Table(title="audit verify")
    for column in ("log", "events", "head", "head hash", "checkpoints", "rate", "result"):
        table.add_column(column)
    for v in verdicts:
        result = "clean" if v.clean else f"{len(v.breaks)} break(s)"
        if recorded.get(v.context):
            result += ", checkpoint recorded"
        table.add_row(
            v.context,
            str(v.events),
            str(v.head),
            v.head_hash.hex()[:16] + "…",
            str(v.checkpoints_checked),
            f"{v.rate:,.0f}/s",
            result,
        )
    Console().print(table)
    for v in verdicts:
        for b in v.breaks:
            print(
                f"BREAK {b.context} {b.kind}: aggregate={b.aggregate_id} version={b.version} "
                f"position={b.position}: {b.detail}"
            )


def _replay(args: argparse.Namespace) -> int:
    from infra.audit.replay import Projection, replay_all, resolve_until
    from infra.targets import check_shadow_name

    try:
        name = check_shadow_name(args.into)
    except ValueError as exc:
        raise SystemExit(f"iconmarket audit replay: {exc}") from None
    specs = [SPECS[p] for p in (args.projection or PROJECTIONS)]
    container = bootstrap()
    console = Console(stderr=True)
    try:
        contexts = sorted({c for spec in specs for c in spec.contexts})
        try:
            until = resolve_until(container, args.until, contexts)
        except ValueError as exc:
            raise SystemExit(f"iconmarket audit replay: {exc}") from None
        _record(container, "cliReplay", "log", {**vars(args), "until": _format(until)})
        with event_progress(console) as update:
            projections = [Projection(spec.name, spec.contexts) for spec in specs]
            results = replay_all(container, projections, name, until, update)
    except ValueError as exc:
        raise SystemExit(f"iconmarket audit replay: {exc}") from None
    finally:
        container.close()
    bound = _format(until)
    for projection, result in results.items():
        print(
            f"{projection}: replayed {result.events} events up to {bound} into "
            f"{result.new_target!r} in {result.seconds:.1f} s ({result.rate:,.0f} events/s)"
        )
    return 0


def _diff(args: argparse.Namespace) -> int:
    from infra.audit.diff import diff, write_report

    projections = args.projection or list(PROJECTIONS)
    container = bootstrap()
    try:
        results = diff(container, projections, args.left, args.right)
    except ValueError as exc:
        raise SystemExit(f"iconmarket audit diff: {exc}") from None
    finally:
        container.close()
    json_path, md_path = write_report(results, args.left, args.right, args.out)
    for r in results:
        print(
            f"{r.projection}: {r.left_count} vs {r.right_count} documents, "
            f"{len(r.only_left)} only in {args.left}, {len(r.only_right)} only in {args.right}, "
            f"{len(r.changed)} changed"
        )
    print(f"report: {json_path} {md_path}")
    return 1 if any(r.differences for r in results) else 0


def _drop(args: argparse.Namespace) -> int:
    from infra.audit.replay import Projection, drop_all

    specs = [SPECS[p] for p in (args.projection or PROJECTIONS)]
    container = bootstrap()
    try:
        dropped = drop_all(container, [Projection(s.name, s.contexts) for s in specs], args.name)
    except ValueError as exc:
        raise SystemExit(f"iconmarket audit drop: {exc}") from None
    finally:
        container.close()
    for projection, count in dropped.items():
        print(f"{projection}: dropped {count}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from infra.audit.export import export
    from infra.audit.replay import parse_time

    try:
        wanted = LogFilter(
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
    except ValueError as exc:
        raise SystemExit(f"iconmarket audit export: {exc}") from None
    container = bootstrap()
    console = Console(stderr=True)
    out = sys.stdout.buffer
    try:
        _record(container, "cliExport", "log", vars(args))
        with event_progress(console) as update:
            count = export(
                container, args.context or list(CONTEXT_NAMES), wanted, out.write, update
            )
        out.flush()
    finally:
        container.close()
    console.print(f"audit export: {count} events")
    return 0
