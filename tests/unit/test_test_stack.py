"""The suite never shares state with `make run`: tests/stack.env moves every service the tests
touch to ports and a state dir of their own, and both the Makefile and the conftest use it."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

from infra.settings import REPO_ROOT, Settings, env_name, load_settings
from tests.stackenv import STACK_ENV, stack_environment
from tests.support import DEV_ENVIRON


def ports(settings: Settings) -> set[int]:
    """Every loopback port a stack of these settings listens on (stripe-mock takes two,
    Mailpit one for SMTP and one for its HTTP API)."""
    stripe = urlsplit(settings.stripe_api_base).port
    assert stripe is not None
    return {
        settings.postgres_port,
        settings.redis_port,
        *(int(server.rsplit(":", 1)[1]) for server in settings.kafka_bootstrap.split(",")),
        settings.kafka_controller_port,
        urlsplit(settings.opensearch_url).port or 0,
        settings.opensearch_transport_port,
        urlsplit(settings.s3_endpoint).port or 0,
        settings.s3_console_port,
        stripe,
        stripe + 1,
        settings.smtp_port,
        urlsplit(settings.mailpit_url).port or 0,
        settings.api_port,
    }


def test_every_variable_of_the_test_stack_is_a_setting() -> None:
    known = {env_name(f.name) for f in dataclasses.fields(Settings)}
    assert set(stack_environment()) <= known


def test_the_test_stack_shares_no_port_and_no_state_dir_with_make_run() -> None:
    run = load_settings(DEV_ENVIRON)  # what `make run` uses: the defaults in dev mode
    test = load_settings(stack_environment())
    assert len(ports(test)) == 13  # no two services on one port
    assert ports(run).isdisjoint(ports(test))
    assert test.state_dir == str(REPO_ROOT / ".stack" / "test")
    assert test.state_dir != run.state_dir


def test_the_session_runs_on_the_test_stack(settings: Settings) -> None:
    assert ports(settings) == ports(load_settings(stack_environment()))
    assert settings.state_dir == str(REPO_ROOT / ".stack" / "test")


def test_make_test_starts_and_runs_on_the_test_stack() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    [stack] = re.findall(r"^TEST_STACK := (.*)$", makefile, re.MULTILINE)
    assert f". {STACK_ENV.relative_to(REPO_ROOT)}" in stack
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert test_recipe is not None
    assert "test-stack-up" in test_recipe.group(0).splitlines()[0]
    assert "$(TEST_STACK) $(BIN)/pytest" in test_recipe.group(1)
