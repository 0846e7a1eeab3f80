"""Shared fixtures. They connect to services but never start any: `make test` runs
`iconmarket stack up` first, and an unreachable service fails the test that needs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
