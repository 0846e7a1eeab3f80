"""The test stack's environment (tests/stack.env): the ports and state dir the suite runs on, so
that nothing a test writes reaches the stack `make run` uses."""

from __future__ import annotations

from pathlib import Path

from dotenv import dotenv_values

from infra.settings import REPO_ROOT

STACK_ENV = Path(__file__).with_name("stack.env")


def stack_environment() -> dict[str, str]:
    """The variables of tests/stack.env, its state dir made absolute (relative to the repo)."""
    values = {name: value for name, value in dotenv_values(STACK_ENV).items() if value}
    state = Path(values["ICONMARKET_STATE_DIR"])
    values["ICONMARKET_STATE_DIR"] = str(state if state.is_absolute() else REPO_ROOT / state)
    return values
