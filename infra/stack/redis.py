"""Redis 7 from Debian's packages, run as the stack's own instance."""

from __future__ import annotations

import subprocess

from infra.stack.base import Service, StackContext, StackError, apt_install, which_or_none


class Redis(Service):
    name = "redis"

    @property
    def version(self) -> str:
        binary = which_or_none("redis-server")
        if binary is None:
            return "7"
        out = subprocess.run(
            [binary, "--version"], check=False, capture_output=True, text=True
        ).stdout
        for part in out.split():
            if part.startswith("v="):
                return part[2:]
        return "7"

    def port(self, ctx: StackContext) -> int:
        return ctx.settings.redis_port

    def install(self, ctx: StackContext) -> None:
        if which_or_none("redis-server") is None:
            apt_install(["redis-server"])

    def prepare(self, ctx: StackContext) -> None:
        self.data_dir(ctx).mkdir(parents=True, exist_ok=True)
        ctx.own(ctx.service_dir(self.name))

    def command(self, ctx: StackContext) -> list[str]:
        binary = which_or_none("redis-server") or "/usr/bin/redis-server"
        s = ctx.settings
        return [
            binary,
            "--bind",
            s.redis_host,
            "--port",
            str(s.redis_port),
            "--dir",
            str(self.data_dir(ctx)),
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--maxclients",
            "4000",
        ]

    def check(self, ctx: StackContext) -> None:
        import redis

        client = redis.Redis(
            host=ctx.settings.redis_host, port=ctx.settings.redis_port, socket_timeout=2
        )
        try:
            if client.ping() is not True:
                raise StackError("redis did not answer PING")
        finally:
            client.close()
