"""Start, find and stop the stack's own processes through pid files, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account services run as when the stack is started by root."""

    uid: int
    gid: int

    @classmethod
    def current(cls) -> RunAs:
        return cls(os.geteuid(), os.getegid())


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot): a pid plus this is unique."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19]


def running_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that very process (same start time) still runs."""
    try:
        pid_text, started = pid_file.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if alive(pid) and start_time(pid) == started:
        return pid
    return None


def spawn(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_file: Path,
    pid_file: Path,
    run_as: RunAs,
) -> int:
    """Start ``argv`` detached (own session) with output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    as_other_user = run_as.uid != os.geteuid()
    with log_file.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        if as_other_user:
            os.chown(log_file, run_as.uid, run_as.gid)
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=run_as.uid if as_other_user else None,
            group=run_as.gid if as_other_user else None,
            extra_groups=[] if as_other_user else None,
        )
    pid_file.write_text(f"{proc.pid} {start_time(proc.pid)}\n")
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child we spawned that exited stays a zombie until reaped; treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def terminate(pid: int, sig: signal.Signals, timeout_s: float) -> bool:
    """Send ``sig`` to the process group, SIGKILL it after ``timeout_s``; True if killed."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return False
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    while alive(pid):
        time.sleep(0.05)
    return True
