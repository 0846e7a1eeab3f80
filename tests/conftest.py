"""Shared fixtures. They connect to services but never start any: `make test` runs
`iconmarket stack up` for the test stack first, and an unreachable service fails the test that
needs it.

The suite runs on a stack of its own (tests/stack.env: other ports, state under .stack/test), so
nothing a test writes is seen by `make run`. The file is loaded into the environment here, before
any test reads a setting, and its values win over the shell's; processes the tests start inherit
it. `make test-stack-up` starts that stack for a `pytest` run by hand."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.stackenv import stack_environment

os.environ.update(stack_environment())
# Rate-limit budgets of this run's own (and of the processes it starts): runs that share the
# test stack never draw on each other's budgets.
os.environ["ICONMARKET_RATE_LIMIT_PREFIX"] = f"ratelimit-test-{uuid.uuid4().hex[:12]}"
# Sessions too (accounts' sessions versions, refresh-token families: api/sessions.py).
os.environ["ICONMARKET_SESSIONS_PREFIX"] = f"sessions-test-{uuid.uuid4().hex[:12]}"

from infra.bootstrap import Container, bootstrap
from infra.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(settings)
    yield built
    built.close()
