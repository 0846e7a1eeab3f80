from __future__ import annotations

import signal
import sys
from pathlib import Path

from infra.stack import process


def test_spawned_process_is_found_through_its_pid_file_and_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "svc.pid"
    pid = process.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={},
        cwd=tmp_path,
        log_file=tmp_path / "svc.log",
        pid_file=pid_file,
        run_as=process.RunAs.current(),
    )
    assert process.running_pid(pid_file) == pid
    assert process.terminate(pid, signal.SIGTERM, timeout_s=10) is False
    assert process.running_pid(pid_file) is None
    assert "start: " in (tmp_path / "svc.log").read_text()


def test_a_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    pid_file = tmp_path / "other.pid"
    pid_file.write_text("1 12345\n")  # pid 1 runs, but did not start at that tick
    assert process.running_pid(pid_file) is None


def test_a_missing_or_garbled_pid_file_means_not_running(tmp_path: Path) -> None:
    assert process.running_pid(tmp_path / "absent.pid") is None
    (tmp_path / "bad.pid").write_text("not a pid")
    assert process.running_pid(tmp_path / "bad.pid") is None
