"""PostgreSQL 15 from Debian's packages, run as the stack's own cluster (own data dir and port)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from infra.stack.base import (
    Service,
    StackContext,
    StackError,
    apt_install,
    run_as_service_user,
)

BIN = Path("/usr/lib/postgresql/15/bin")


class Postgres(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client

    @property
    def version(self) -> str:
        try:
            out = subprocess.run(
                [str(BIN / "postgres"), "--version"], capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return "15"
        return out.split()[2]  # "postgres (PostgreSQL) 15.18 (Debian ...)"

    def port(self, ctx: StackContext) -> int:
        return ctx.settings.postgres_port

    def install(self, ctx: StackContext) -> None:
        if not (BIN / "postgres").exists():
            apt_install(["postgresql-15"])

    def prepare(self, ctx: StackContext) -> None:
        data = self.data_dir(ctx)
        if (data / "PG_VERSION").exists():
            return
        home = ctx.service_dir(self.name)
        data.mkdir(parents=True, exist_ok=True)
        (home / "run").mkdir(exist_ok=True)
        pwfile = home / "initdb.pw"
        pwfile.write_text(ctx.settings.postgres_password + "\n")
        ctx.own(home)
        try:
            run_as_service_user(
                ctx,
                [
                    str(BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    ctx.settings.postgres_user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def command(self, ctx: StackContext) -> list[str]:
        s = ctx.settings
        return [
            str(BIN / "postgres"),
            "-D",
            str(self.data_dir(ctx)),
            "-c",
            f"listen_addresses={s.postgres_host}",
            "-c",
            f"port={s.postgres_port}",
            "-c",
            f"unix_socket_directories={ctx.service_dir(self.name) / 'run'}",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "logging_collector=off",
        ]

    def check(self, ctx: StackContext) -> None:
        import psycopg

        s = ctx.settings
        with psycopg.connect(
            host=s.postgres_host,
            port=s.postgres_port,
            user=s.postgres_user,
            password=s.postgres_password,
            dbname="postgres",
            connect_timeout=2,
        ) as conn:
            row = conn.execute("SELECT 1").fetchone()
            if row != (1,):
                raise StackError(f"postgres answered SELECT 1 with {row!r}")

    def after_ready(self, ctx: StackContext) -> None:
        import psycopg
        from psycopg import sql

        s = ctx.settings
        with psycopg.connect(
            host=s.postgres_host,
            port=s.postgres_port,
            user=s.postgres_user,
            password=s.postgres_password,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (s.postgres_db,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(s.postgres_db)))
