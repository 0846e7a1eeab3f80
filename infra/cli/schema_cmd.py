"""`iconmarket schema export [--check]`: write the event contract (JSON Schemas + AsyncAPI)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.settings import REPO_ROOT
from stream.asyncapi import asyncapi_document, render_yaml
from stream.schemas import envelope_schema, event_schema, event_types, render_json

EVENTS_DIR = Path("docs") / "events"
SCHEMAS_DIR = EVENTS_DIR / "schemas"


def register(commands: Any) -> None:
    schema = commands.add_parser(
        "schema",
        help="the event contract: JSON Schemas and the AsyncAPI document",
        description="The Kafka event contract, generated from the domain's event classes.",
    )
    actions = schema.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write docs/events/ (one JSON Schema per event type, envelope.json, asyncapi.yaml)",
        description="Regenerate docs/events/schemas/<Type>.json for every event type, "
        "docs/events/envelope.json and docs/events/asyncapi.yaml, and delete schema files of "
        "types that no longer exist. With --check, write nothing and exit 1 listing the stale, "
        "missing and extra files.",
    )
    export.add_argument(
        "--check", action="store_true", help="only report (exit 1) when the files are not current"
    )
    export.add_argument(
        "--root",
        type=Path,
        default=None,
        help="the checkout whose docs/events to check or write (default: this checkout; "
        "needed when iconmarket runs from an installed wheel)",
    )
    export.set_defaults(handler=_export)


def generated_files() -> dict[Path, str]:
    """Each generated file's path (relative to the repository) and its text."""
    files = {
        SCHEMAS_DIR / f"{event_type.name}.json": render_json(event_schema(event_type))
        for event_type in event_types()
    }
    files[EVENTS_DIR / "envelope.json"] = render_json(envelope_schema())
    files[EVENTS_DIR / "asyncapi.yaml"] = render_yaml(
        asyncapi_document(f"./{SCHEMAS_DIR.relative_to(EVENTS_DIR)}")
    )
    return files


@dataclass(frozen=True)
class Drift:
    """How the files under a root differ from the generated ones (paths relative to it)."""

    stale: list[Path]
    missing: list[Path]
    extra: list[Path]

    @property
    def current(self) -> bool:
        return not (self.stale or self.missing or self.extra)


def drift(root: Path, files: dict[Path, str] | None = None) -> Drift:
    """Compare the files under ``root`` with ``files`` (default: the generated ones)."""
    files = generated_files() if files is None else files
    present = {path.relative_to(root) for path in (root / SCHEMAS_DIR).glob("*.json")}
    return Drift(
        stale=sorted(
            path
            for path, text in files.items()
            if (root / path).exists() and (root / path).read_text() != text
        ),
        missing=sorted(path for path in files if not (root / path).exists()),
        extra=sorted(present - files.keys()),
    )


def export(root: Path) -> Drift:
    """Write the stale and missing files, delete the extra ones; returns what it changed."""
    files = generated_files()
    changes = drift(root, files)
    for path in [*changes.stale, *changes.missing]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(files[path])
    for path in changes.extra:
        (root / path).unlink()
    return changes


def _export(args: argparse.Namespace) -> int:
    root: Path = args.root if args.root is not None else REPO_ROOT
    if not (root / EVENTS_DIR).is_dir():
        print(f"{root / EVENTS_DIR} does not exist: pass --root <checkout>", file=sys.stderr)
        return 2
    if args.check:
        changes = drift(root)
        for label, paths in (
            ("stale", changes.stale),
            ("missing", changes.missing),
            ("extra", changes.extra),
        ):
            for path in paths:
                print(f"{label}: {path}", file=sys.stderr)
        if not changes.current:
            print("run `iconmarket schema export` to regenerate them", file=sys.stderr)
        return 0 if changes.current else 1
    changes = export(root)
    for path in changes.stale + changes.missing:
        print(f"wrote {path}")
    for path in changes.extra:
        print(f"deleted {path}")
    print(f"{len(event_types())} event types; docs/events is current")
    return 0
