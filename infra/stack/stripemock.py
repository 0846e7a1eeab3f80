"""stripe-mock, Stripe's own API double, built with `go install`."""

from __future__ import annotations

from pathlib import Path

from infra.stack.artifacts import cached, go_install
from infra.stack.base import Service, StackContext, StackError

STRIPE_MOCK_MODULE = "github.com/stripe/stripe-mock"
STRIPE_MOCK_VERSION = "v0.203.0"


class StripeMock(Service):
    name = "stripe-mock"

    @property
    def version(self) -> str:
        return STRIPE_MOCK_VERSION

    def port(self, ctx: StackContext) -> int:
        return int(ctx.settings.stripe_api_base.rstrip("/").rsplit(":", 1)[1])

    def other_ports(self, ctx: StackContext) -> list[int]:
        return [self.port(ctx) + 1]  # its HTTPS listener

    def _bin(self, ctx: StackContext) -> Path:
        return ctx.cache_dir / "stripe-mock" / STRIPE_MOCK_VERSION

    def install(self, ctx: StackContext) -> None:
        cached(
            self._bin(ctx), lambda work: go_install(STRIPE_MOCK_MODULE, STRIPE_MOCK_VERSION, work)
        )

    def prepare(self, ctx: StackContext) -> None:
        ctx.service_dir(self.name).mkdir(parents=True, exist_ok=True)
        ctx.own(ctx.service_dir(self.name))

    def command(self, ctx: StackContext) -> list[str]:
        host = ctx.settings.stripe_api_base.split("//", 1)[1].rsplit(":", 1)[0]
        # stripe-mock always serves HTTPS too, on all interfaces unless told otherwise.
        return [
            str(self._bin(ctx) / "stripe-mock"),
            "-http-addr",
            f"{host}:{self.port(ctx)}",
            "-https-addr",
            f"{host}:{self.port(ctx) + 1}",
        ]

    def check(self, ctx: StackContext) -> None:
        import httpx

        response = httpx.get(
            f"{ctx.settings.stripe_api_base}/v1/customers",
            headers={"Authorization": f"Bearer {ctx.settings.stripe_secret_key}"},
            timeout=3,
        )
        if response.status_code != 200 or response.json().get("object") != "list":
            raise StackError(f"stripe-mock answered {response.status_code}: {response.text[:200]}")
