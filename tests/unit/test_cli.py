from __future__ import annotations

import argparse

import pytest

from infra.cli import build_parser


def _all_command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _all_command_paths(sub, (*prefix, name))
    return paths


COMMAND_PATHS = _all_command_paths(build_parser())


def test_the_cli_has_the_foundation_commands() -> None:
    assert {
        ("stack", "up"),
        ("stack", "down"),
        ("stack", "status"),
        ("stack", "logs"),
        ("config", "show"),
        ("config", "docs"),
        ("init",),
        ("api",),
        ("run",),
        ("health",),
    } <= set(COMMAND_PATHS)


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "iconmarket")
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: iconmarket")
    assert len(out.splitlines()) >= 3


def test_an_unknown_stack_service_is_refused_with_the_known_names() -> None:
    from infra.stack.base import StackError
    from infra.stack.manager import select

    with pytest.raises(StackError, match=r"unknown service\(s\) \['mysql'\]"):
        select(["mysql"])
