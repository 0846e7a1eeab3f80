"""The stack's Mailpit: the pinned `go install` build in the cache dir, and a command line that
binds SMTP and the HTTP API to the configured loopback ports with its mailbox under the state
dir, offline (no reverse DNS, no release check) and refusing foreign Host headers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.settings import load_settings
from infra.stack import artifacts, manager
from infra.stack.base import StackContext, StackError
from infra.stack.mailpit import MAILPIT_MAX_MESSAGES, MAILPIT_VERSION, Mailpit
from infra.stack.process import RunAs
from tests.stackenv import stack_environment
from tests.support import DEV_ENVIRON

STATE = Path("/tmp/iconmarket-mailpit-unit/state")
CACHE = Path("/tmp/iconmarket-mailpit-unit/cache")


def _ctx(environ: dict[str, str]) -> StackContext:
    return StackContext(
        settings=load_settings(environ), state_dir=STATE, cache_dir=CACHE, run_as=RunAs(0, 0)
    )


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_it_is_a_service_of_the_stack_after_stripe_mock() -> None:
    names = [service.name for service in manager.SERVICES]
    assert names[-2:] == ["stripe-mock", "mailpit"]
    assert manager.select(["mailpit"])[0].name == "mailpit"


@pytest.mark.parametrize(
    ("environ", "smtp", "http"),
    [
        (DEV_ENVIRON, "127.0.0.1:11025", "127.0.0.1:18025"),
        (
            {**stack_environment(), **DEV_ENVIRON, "ICONMARKET_ENV": "test"},
            "127.0.0.1:21025",
            "127.0.0.1:28025",
        ),
    ],
    ids=["dev", "test-stack"],
)
def test_the_command_line_binds_both_listeners_to_the_settings(
    environ: dict[str, str], smtp: str, http: str
) -> None:
    ctx = _ctx(environ)
    service = Mailpit()
    argv = service.command(ctx)

    assert argv[0] == str(CACHE / "mailpit" / MAILPIT_VERSION / "mailpit")
    assert _option(argv, "--smtp") == smtp
    assert _option(argv, "--listen") == http
    assert service.port(ctx) == int(smtp.rsplit(":", 1)[1])
    assert service.other_ports(ctx) == [int(http.rsplit(":", 1)[1])]
    assert _option(argv, "--database") == str(STATE / "mailpit" / "data" / "mailpit.db")
    assert _option(argv, "--max") == str(MAILPIT_MAX_MESSAGES)
    assert _option(argv, "--allowed-hosts") == "127.0.0.1"
    assert {"--smtp-disable-rdns", "--disable-version-check", "--smtp-auth-accept-any"} <= set(argv)
    # POP3 is off unless given credentials; nothing here turns it on.
    assert not [arg for arg in argv if arg.startswith("--pop3")]
    assert service.environment(ctx)["HOME"] == str(STATE / "mailpit")
    assert service.log_file(ctx) == STATE / "mailpit" / "mailpit.log"
    assert service.pid_file(ctx) == STATE / "mailpit" / "mailpit.pid"


def test_a_mailpit_url_without_a_port_is_refused() -> None:
    ctx = _ctx({**DEV_ENVIRON, "ICONMARKET_MAILPIT_URL": "http://127.0.0.1"})
    expected = "ICONMARKET_MAILPIT_URL='http://127.0.0.1' names no port"
    with pytest.raises(StackError, match=re.escape(expected)):
        Mailpit().command(ctx)


def test_install_builds_the_pinned_module_with_cgo_off_and_the_version_stamped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(argv: list[str], *, env: dict[str, str] | None = None, **_: object) -> str:
        calls.append((argv, env or {}))
        (Path((env or {})["GOBIN"]) / "mailpit").write_text("#!/bin/true\n")
        return ""

    monkeypatch.setattr(artifacts, "run", fake_run)
    monkeypatch.setattr(artifacts, "require_tool", lambda name, hint: f"/usr/bin/{name}")
    ctx = StackContext(
        settings=load_settings(DEV_ENVIRON),
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        run_as=RunAs(0, 0),
    )

    Mailpit().install(ctx)
    Mailpit().install(ctx)  # cached: built once

    [(argv, env)] = calls
    assert argv == [
        "/usr/bin/go",
        "install",
        f"-ldflags=-X github.com/axllent/mailpit/config.Version={MAILPIT_VERSION}",
        f"github.com/axllent/mailpit@{MAILPIT_VERSION}",
    ]
    assert env["CGO_ENABLED"] == "0"
    target = tmp_path / "cache" / "mailpit" / MAILPIT_VERSION
    assert (target / "mailpit").exists()
    assert (target / artifacts.DONE_MARK).exists()
