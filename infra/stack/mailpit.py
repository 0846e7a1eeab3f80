"""Mailpit: a real SMTP server that keeps every mail it receives and serves them over an HTTP
API (and a web UI), built with `go install`. Nothing it receives is delivered onwards."""

from __future__ import annotations

import smtplib
from pathlib import Path
from urllib.parse import urlsplit

from infra.stack.artifacts import cached, go_install
from infra.stack.base import Service, StackContext, StackError

MAILPIT_MODULE = "github.com/axllent/mailpit"
MAILPIT_VERSION = "v1.33.1"
MAILPIT_MAX_MESSAGES = 20_000
"""Mailpit prunes the oldest mail beyond this (its own default, 500, is a few test runs)."""


class Mailpit(Service):
    name = "mailpit"

    @property
    def version(self) -> str:
        return MAILPIT_VERSION

    def port(self, ctx: StackContext) -> int:
        return ctx.settings.smtp_port

    def http_host(self, ctx: StackContext) -> str:
        return urlsplit(ctx.settings.mailpit_url).hostname or ""

    def http_port(self, ctx: StackContext) -> int:
        port = urlsplit(ctx.settings.mailpit_url).port
        if port is None:
            raise StackError(f"ICONMARKET_MAILPIT_URL={ctx.settings.mailpit_url!r} names no port")
        return port

    def other_ports(self, ctx: StackContext) -> list[int]:
        return [self.http_port(ctx)]

    def _bin(self, ctx: StackContext) -> Path:
        return ctx.cache_dir / "mailpit" / MAILPIT_VERSION

    def install(self, ctx: StackContext) -> None:
        # The Go module holds no web UI bundle (mailpit's release builds it with npm): the UI
        # page loads without its scripts, the HTTP API and SMTP are whole. The version stamp
        # makes /api/v1/info and `mailpit version` tell the pinned version, not "dev".
        stamp = f"-X {MAILPIT_MODULE}/config.Version={MAILPIT_VERSION}"
        cached(
            self._bin(ctx),
            lambda work: go_install(MAILPIT_MODULE, MAILPIT_VERSION, work, ldflags=stamp),
        )

    def prepare(self, ctx: StackContext) -> None:
        self.data_dir(ctx).mkdir(parents=True, exist_ok=True)
        ctx.own(ctx.service_dir(self.name))

    def database(self, ctx: StackContext) -> Path:
        return self.data_dir(ctx) / "mailpit.db"

    def command(self, ctx: StackContext) -> list[str]:
        s = ctx.settings
        return [
            str(self._bin(ctx) / "mailpit"),
            "--smtp",
            f"{s.smtp_host}:{self.port(ctx)}",
            "--listen",
            f"{self.http_host(ctx)}:{self.http_port(ctx)}",
            "--database",
            str(self.database(ctx)),
            "--max",
            str(MAILPIT_MAX_MESSAGES),
            # Any password, or none, is accepted on a plain connection (a dev mailer may log in).
            "--smtp-auth-accept-any",
            "--smtp-auth-allow-insecure",
            # Offline and quiet: no reverse DNS per connection, no release check on GitHub.
            "--smtp-disable-rdns",
            "--disable-version-check",
            # Refuse other Host headers than loopback's (a DNS-rebinding page cannot read mail).
            "--allowed-hosts",
            self.http_host(ctx),
        ]

    def environment(self, ctx: StackContext) -> dict[str, str]:
        return {**super().environment(ctx), "HOME": str(ctx.service_dir(self.name))}

    def check(self, ctx: StackContext) -> None:
        import httpx

        s = ctx.settings
        with smtplib.SMTP(s.smtp_host, self.port(ctx), timeout=3) as smtp:
            code, reply = smtp.noop()
            if code != 250:
                raise StackError(f"mailpit SMTP answered NOOP with {code} {reply!r}")
        response = httpx.get(f"{s.mailpit_url.rstrip('/')}/api/v1/info", timeout=3)
        if response.status_code != 200:
            raise StackError(f"mailpit API answered {response.status_code}: {response.text[:200]}")
        version = response.json().get("Version")
        if version != MAILPIT_VERSION:
            raise StackError(f"mailpit API reports version {version!r}, not {MAILPIT_VERSION}")
