"""What every service of the native stack provides, and the context it runs in."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings
from infra.stack.process import RunAs


class StackError(RuntimeError):
    """A service could not be installed, started or reached; the message says what to look at."""


@dataclass(frozen=True)
class StackContext:
    settings: Settings
    state_dir: Path
    cache_dir: Path
    run_as: RunAs

    @classmethod
    def from_settings(cls, settings: Settings) -> StackContext:
        state = Path(settings.state_dir).resolve()
        cache = settings.resolved_cache_dir.resolve()
        return cls(settings=settings, state_dir=state, cache_dir=cache, run_as=_run_as(settings))

    def service_dir(self, name: str) -> Path:
        return self.state_dir / name

    def own(self, path: Path) -> None:
        """Hand ``path`` (recursively) to the account the services run as."""
        if self.run_as.uid == os.geteuid():
            return
        for root, dirs, files in os.walk(path):
            os.chown(root, self.run_as.uid, self.run_as.gid)
            for item in dirs + files:
                os.chown(os.path.join(root, item), self.run_as.uid, self.run_as.gid)


def _run_as(settings: Settings) -> RunAs:
    if os.geteuid() != 0:
        return RunAs.current()
    name = settings.service_user
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
        entry = pwd.getpwnam(name)
    return RunAs(entry.pw_uid, entry.pw_gid)


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a setup command to completion; on failure raise with its output."""
    result = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-3000:]
        raise StackError(f"command failed ({result.returncode}): {' '.join(argv)}\n{tail}")
    return result.stdout


def run_as_service_user(ctx: StackContext, argv: list[str]) -> str:
    """Run a setup command as the account the services run as."""
    if ctx.run_as.uid != os.geteuid():
        argv = [
            "setpriv",
            f"--reuid={ctx.run_as.uid}",
            f"--regid={ctx.run_as.gid}",
            "--clear-groups",
            *argv,
        ]
    return run(argv)


def which_or_none(name: str) -> str | None:
    return shutil.which(name)


def apt_install(packages: list[str]) -> None:
    """Install Debian packages (root only), refreshing the package lists once if needed."""
    if os.geteuid() != 0:
        raise StackError(
            f"missing Debian packages {packages}: "
            f"run `sudo apt-get install -y {' '.join(packages)}`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "install", "-y", "--no-install-recommends", *packages], env=env)
    except StackError:
        run(["apt-get", "update"], env=env)
        run(["apt-get", "install", "-y", "--no-install-recommends", *packages], env=env)


class Service(ABC):
    """One server of the stack: how to install it, start it, and know it is really ready."""

    name: str
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout_s: float = 30.0

    @property
    @abstractmethod
    def version(self) -> str:
        """The version this stack runs."""

    @abstractmethod
    def port(self, ctx: StackContext) -> int:
        """The main port, on 127.0.0.1."""

    def other_ports(self, ctx: StackContext) -> list[int]:
        """Further ports it listens on, on 127.0.0.1 (a console, a second protocol)."""
        return []

    @abstractmethod
    def install(self, ctx: StackContext) -> None:
        """Make the binaries available (idempotent; downloads land in the cache dir)."""

    def prepare(self, ctx: StackContext) -> None:
        """First-start initialisation of the data directory (idempotent)."""

    @abstractmethod
    def command(self, ctx: StackContext) -> list[str]:
        """The argv that runs the server in the foreground."""

    def environment(self, ctx: StackContext) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    @abstractmethod
    def check(self, ctx: StackContext) -> None:
        """A protocol-level readiness probe; raises when the service is not ready."""

    def after_ready(self, ctx: StackContext) -> None:
        """Create what the app expects to exist (database, buckets); idempotent."""

    def data_dir(self, ctx: StackContext) -> Path:
        return ctx.service_dir(self.name) / "data"

    def log_file(self, ctx: StackContext) -> Path:
        return ctx.service_dir(self.name) / f"{self.name}.log"

    def pid_file(self, ctx: StackContext) -> Path:
        return ctx.service_dir(self.name) / f"{self.name}.pid"
