"""The process supervisor of `iconmarket run`: one child process per long-running command.

A child that exits while nobody asked it to (a crash, an OOM kill, an operator's ``kill -9``)
is restarted after a short backoff that doubles with each further crash of that child within
the crash window, up to a cap. Work is not lost meanwhile: every child resumes from what it
committed (the relay from its saved position, consumers from their group's offsets, the API's
clients retry with their Idempotency-Key). A child that keeps crashing is not hidden behind
endless restarts: when one child has crashed ``max_crashes`` times within ``window_s``, the
supervisor stops every child and exits non-zero, as it did on any exit before.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from infra.settings import Settings
from stream.failures import Backoff

STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RestartPolicy:
    """When a crashed child is restarted, and when the supervisor gives up instead."""

    max_crashes: int
    """Crashes of one child within ``window_s`` that make the supervisor stop everything."""
    window_s: float
    backoff: Backoff

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(
            max_crashes=settings.supervisor_max_crashes,
            window_s=settings.supervisor_crash_window_s,
            backoff=Backoff(
                initial_s=settings.supervisor_restart_backoff_s,
                factor=2.0,
                max_s=settings.supervisor_restart_backoff_max_s,
            ),
        )


def describe_exit(returncode: int) -> str:
    """``exited with 3`` or ``was killed by SIGKILL`` (Popen reports a signal as -signum)."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with {returncode}"


def exit_status(returncode: int) -> int:
    """The supervisor's own exit status for a child's: a shell's 128 + signal for a signal,
    and never 0 (giving up is a failure even if the child's last exit was clean)."""
    if returncode < 0:
        return 128 - returncode
    return returncode or 1


@dataclass
class Child:
    """One supervised command: its current process, its recent crashes, a pending restart."""

    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    crashes: collections.deque[float] = field(default_factory=collections.deque)
    restart_at: float | None = None
    starts: int = 0

    def recent_crashes(self, now: float, window_s: float) -> int:
        while self.crashes and now - self.crashes[0] > window_s:
            self.crashes.popleft()
        return len(self.crashes)


class Supervisor:
    """Runs ``commands`` (name → argv) as children until ``stop`` is set, restarting a child
    that exits unexpectedly (see the module docstring).

    ``report`` receives one line per start, exit and restart (console markup); ``reaped`` is
    called with the pid of each child that is gone, e.g. to drop its live metrics."""

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        policy: RestartPolicy,
        *,
        env: Mapping[str, str] | None = None,
        report: Callable[[str], None] = lambda _line: None,
        reaped: Callable[[int], None] = lambda _pid: None,
        poll_s: float = 0.2,
    ) -> None:
        self.children = {name: Child(name, list(argv)) for name, argv in commands.items()}
        self.policy = policy
        self.env = dict(env) if env is not None else None
        self.report = report
        self.reaped = reaped
        self.poll_s = poll_s
        self._lock = threading.Lock()

    def pids(self) -> dict[str, int]:
        """Each running child's pid (a child waiting for its restart is left out)."""
        with self._lock:
            return {
                name: child.process.pid
                for name, child in self.children.items()
                if child.process is not None and child.process.poll() is None
            }

    def run(self, stop: threading.Event) -> int:
        """Start every child, supervise until ``stop`` is set or a child crashed too often,
        then stop them all. Returns 0 after ``stop``, else the exit status of giving up."""
        try:
            for child in self.children.values():
                self._start(child)
            while not stop.is_set():
                gave_up = self._check(time.monotonic())
                if gave_up is not None:
                    return gave_up
                stop.wait(self.poll_s)
            return 0
        finally:
            self._stop_all()

    def _start(self, child: Child) -> None:
        with self._lock:
            child.process = subprocess.Popen(child.argv, env=self.env)
            child.restart_at = None
            child.starts += 1
        if child.starts > 1:
            self.report(f"{child.name} restarted (pid {child.process.pid})")

    def _check(self, now: float) -> int | None:
        for child in self.children.values():
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            process = child.process
            if process is None or process.poll() is None:
                continue
            self.reaped(process.pid)
            gave_up = self._crashed(child, process, now)
            if gave_up is not None:
                return gave_up
        return None

    def _crashed(self, child: Child, process: subprocess.Popen[bytes], now: float) -> int | None:
        """Schedule the restart of a child that exited, or give up (returns the exit status)."""
        child.crashes.append(now)
        crashes = child.recent_crashes(now, self.policy.window_s)
        how = describe_exit(process.returncode)
        window = f"{self.policy.window_s:g} s"
        if crashes >= self.policy.max_crashes:
            self.report(
                f"[red]{child.name} (pid {process.pid}) {how}: it crashed {crashes} "
                f"time{'s' if crashes > 1 else ''} within {window}; stopping all[/]"
            )
            return exit_status(process.returncode)
        delay = self.policy.backoff.delay(crashes)
        self.report(
            f"[red]{child.name} (pid {process.pid}) {how}; restarting it in {delay:g} s "
            f"(crash {crashes} of {self.policy.max_crashes} allowed within {window})[/]"
        )
        with self._lock:
            child.restart_at = now + delay
        return None

    def _stop_all(self) -> None:
        running = []
        with self._lock:
            for child in self.children.values():
                child.restart_at = None
                if child.process is not None and child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
                    running.append(child.process)
        for process in running:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self.reaped(process.pid)
