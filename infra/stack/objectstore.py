"""The S3-compatible object server: MinIO, built from source with `go install`."""

from __future__ import annotations

from pathlib import Path

from infra.bootstrap import bootstrap
from infra.provision import ensure_buckets
from infra.stack.artifacts import cached, go_install
from infra.stack.base import Service, StackContext, StackError

MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"


class ObjectStore(Service):
    name = "s3"

    @property
    def version(self) -> str:
        return f"minio {MINIO_VERSION.rsplit('-', 2)[1][:8]}"

    def port(self, ctx: StackContext) -> int:
        return int(ctx.settings.s3_endpoint.rstrip("/").rsplit(":", 1)[1])

    def other_ports(self, ctx: StackContext) -> list[int]:
        return [ctx.settings.s3_console_port]

    def _bin(self, ctx: StackContext) -> Path:
        return ctx.cache_dir / "minio" / MINIO_VERSION

    def install(self, ctx: StackContext) -> None:
        cached(self._bin(ctx), lambda work: go_install(MINIO_MODULE, MINIO_VERSION, work))

    def prepare(self, ctx: StackContext) -> None:
        self.data_dir(ctx).mkdir(parents=True, exist_ok=True)
        ctx.own(ctx.service_dir(self.name))

    def command(self, ctx: StackContext) -> list[str]:
        s = ctx.settings
        host = s.s3_endpoint.split("//", 1)[1].rsplit(":", 1)[0]
        return [
            str(self._bin(ctx) / "minio"),
            "server",
            str(self.data_dir(ctx)),
            "--address",
            f"{host}:{self.port(ctx)}",
            "--console-address",
            f"{host}:{s.s3_console_port}",
            "--quiet",
        ]

    def environment(self, ctx: StackContext) -> dict[str, str]:
        s = ctx.settings
        return {
            **super().environment(ctx),
            "HOME": str(ctx.service_dir(self.name)),
            "MINIO_ROOT_USER": s.s3_access_key,
            "MINIO_ROOT_PASSWORD": s.s3_secret_key,
            "MINIO_UPDATE": "off",
            "MINIO_REGION": s.s3_region,
        }

    def check(self, ctx: StackContext) -> None:
        container = bootstrap(ctx.settings)
        response = container.s3.list_buckets()
        if response["ResponseMetadata"]["HTTPStatusCode"] != 200:
            raise StackError(f"s3 ListBuckets answered {response['ResponseMetadata']}")

    def after_ready(self, ctx: StackContext) -> None:
        ensure_buckets(bootstrap(ctx.settings), report=lambda _message: None)
