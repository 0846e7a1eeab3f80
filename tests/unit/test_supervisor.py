"""The supervisor of `iconmarket run` (`infra.supervisor`) with real, short-lived children: a
child that dies is restarted after a capped backoff, one that keeps dying within the window
stops everything with a non-zero status, and a stop terminates every child."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from infra.settings import SettingsError, load_settings
from infra.supervisor import RestartPolicy, Supervisor, describe_exit, exit_status
from stream.failures import Backoff
from tests.support import DEV_ENVIRON, eventually

WAITS = "import signal; signal.pause()"  # runs until a signal ends it
CRASHES = "import sys; sys.exit(3)"
# Exits 1 on its first ``argv[2]`` starts (counted in the file ``argv[1]``), then runs.
CRASHES_AT_FIRST = (
    "import pathlib, signal, sys\n"
    "count = pathlib.Path(sys.argv[1])\n"
    "started = int(count.read_text()) if count.exists() else 0\n"
    "count.write_text(str(started + 1))\n"
    "if started < int(sys.argv[2]):\n"
    "    sys.exit(1)\n"
    "signal.pause()\n"
)
QUICK = Backoff(initial_s=0.01, factor=2.0, max_s=0.04)


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


class Recorded:
    """A supervisor in a thread, with what it reported and the pids it reaped."""

    def __init__(self, commands: dict[str, list[str]], policy: RestartPolicy) -> None:
        self.lines: list[str] = []
        self.reaped: list[int] = []
        self.stop = threading.Event()
        self.supervisor = Supervisor(
            commands, policy, report=self.lines.append, reaped=self.reaped.append, poll_s=0.01
        )
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.status = self.supervisor.run(self.stop)

    def finish(self, timeout_s: float = 30) -> int:
        self.stop.set()
        return self.returned(timeout_s)

    def returned(self, timeout_s: float = 30) -> int:
        self.thread.join(timeout=timeout_s)
        assert not self.thread.is_alive(), self.lines
        assert self.status is not None
        return self.status

    def pid(self, name: str) -> int:
        assert eventually(lambda: name in self.supervisor.pids(), 10), self.lines
        return self.supervisor.pids()[name]


def test_a_killed_child_is_restarted_and_a_stop_terminates_every_child() -> None:
    run = Recorded({"worker": _python(WAITS), "api": _python(WAITS)}, RestartPolicy(5, 60.0, QUICK))
    first, api = run.pid("worker"), run.pid("api")
    os.kill(first, signal.SIGKILL)
    assert eventually(lambda: run.supervisor.pids().get("worker", first) != first, 10), run.lines
    second = run.supervisor.pids()["worker"]
    assert run.supervisor.pids()["api"] == api  # the others were left alone

    assert run.finish() == 0
    assert run.lines == [
        f"[red]worker (pid {first}) was killed by SIGKILL; restarting it in 0.01 s "
        "(crash 1 of 5 allowed within 60 s)[/]",
        f"worker restarted (pid {second})",
    ]
    assert sorted(run.reaped) == sorted([first, second, api])
    processes = {child.name: child.process for child in run.supervisor.children.values()}
    assert {name: p.returncode for name, p in processes.items() if p} == {
        "worker": -signal.SIGTERM,
        "api": -signal.SIGTERM,
    }
    assert run.supervisor.children["worker"].starts == 2


def test_a_child_crashing_too_often_within_the_window_stops_all_with_its_status() -> None:
    run = Recorded(
        {"flaky": _python(CRASHES), "steady": _python(WAITS)}, RestartPolicy(3, 60.0, QUICK)
    )
    assert run.returned() == 3
    pids = run.reaped[:3]
    assert run.lines == [
        f"[red]flaky (pid {pids[0]}) exited with 3; restarting it in 0.01 s "
        "(crash 1 of 3 allowed within 60 s)[/]",
        f"flaky restarted (pid {pids[1]})",
        f"[red]flaky (pid {pids[1]}) exited with 3; restarting it in 0.02 s "
        "(crash 2 of 3 allowed within 60 s)[/]",
        f"flaky restarted (pid {pids[2]})",
        f"[red]flaky (pid {pids[2]}) exited with 3: it crashed 3 times within 60 s; "
        "stopping all[/]",
    ]
    steady = run.supervisor.children["steady"].process
    assert steady is not None
    assert steady.returncode == -signal.SIGTERM
    assert run.supervisor.children["flaky"].starts == 3


def test_crashes_further_apart_than_the_window_never_add_up(tmp_path: Path) -> None:
    """Each crash is alone in a window shorter than a restart takes: four crashes in a row
    with max_crashes=2 still end in a running child."""
    count = tmp_path / "starts"
    run = Recorded(
        {"flaky": _python(CRASHES_AT_FIRST, str(count), "4")}, RestartPolicy(2, 0.001, QUICK)
    )
    assert eventually(lambda: count.exists() and count.read_text() == "5", 30), run.lines
    running = run.pid("flaky")
    assert run.finish() == 0
    restarts = [line for line in run.lines if "restarting it in 0.01 s (crash 1 of 2" in line]
    assert len(restarts) == 4
    assert run.lines[-1] == f"flaky restarted (pid {running})"
    assert run.supervisor.children["flaky"].starts == 5


def test_the_first_crash_stops_all_when_one_crash_is_allowed() -> None:
    run = Recorded({"only": _python(CRASHES)}, RestartPolicy(1, 60.0, QUICK))
    assert run.returned() == 3
    assert run.supervisor.children["only"].starts == 1
    assert len(run.lines) == 1
    assert run.lines[0].endswith("exited with 3: it crashed 1 time within 60 s; stopping all[/]")


def test_exits_are_described_and_giving_up_is_never_status_0() -> None:
    assert describe_exit(3) == "exited with 3"
    assert describe_exit(0) == "exited with 0"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert (exit_status(3), exit_status(0), exit_status(-signal.SIGKILL)) == (3, 1, 137)


def test_the_policy_comes_from_the_settings_and_zero_crashes_is_refused() -> None:
    settings = load_settings(
        {
            **DEV_ENVIRON,
            "ICONMARKET_SUPERVISOR_MAX_CRASHES": "4",
            "ICONMARKET_SUPERVISOR_CRASH_WINDOW_S": "30",
            "ICONMARKET_SUPERVISOR_RESTART_BACKOFF_S": "0.25",
            "ICONMARKET_SUPERVISOR_RESTART_BACKOFF_MAX_S": "2",
        }
    )
    assert RestartPolicy.from_settings(settings) == RestartPolicy(4, 30.0, Backoff(0.25, 2.0, 2.0))
    with pytest.raises(SettingsError, match="ICONMARKET_SUPERVISOR_MAX_CRASHES=0"):
        load_settings({**DEV_ENVIRON, "ICONMARKET_SUPERVISOR_MAX_CRASHES": "0"})
