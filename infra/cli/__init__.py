"""The one `iconmarket` command line: subcommands, each with its own --help."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from infra.cli import (
    audit_cmd,
    carts_cmd,
    config_cmd,
    dlq_cmd,
    media_cmd,
    payments_cmd,
    project_cmd,
    relay_cmd,
    run_cmd,
    schema_cmd,
    stack_cmd,
    stream_cmd,
)
from infra.settings import SettingsError
from infra.stack.base import StackError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iconmarket",
        description="iconmarket: an event-sourced SVG icon marketplace backend.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stack_cmd.register(commands)
    config_cmd.register(commands)
    run_cmd.register(commands)
    relay_cmd.register(commands)
    schema_cmd.register(commands)
    stream_cmd.register(commands)
    dlq_cmd.register(commands)
    project_cmd.register(commands)
    payments_cmd.register(commands)
    carts_cmd.register(commands)
    audit_cmd.register(commands)
    media_cmd.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except (StackError, SettingsError) as exc:
        print(f"iconmarket: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
