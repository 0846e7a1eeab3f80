"""`iconmarket run` (what `make run` ends in) serves /health/ready with every dependency up,
and Ctrl-C stops the API it supervises."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.support import free_port


def _wait_for_log(proc: subprocess.Popen[bytes], needle: str, timeout_s: float) -> list[str]:
    """Read the child's stderr until a JSON log line's message contains ``needle``."""
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        line = proc.stderr.readline().decode(errors="replace")
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never logged {needle!r}; stderr was:\n{''.join(seen)[-4000:]}")


@dataclass
class RunningApp:
    """`iconmarket run` as a child of the test: its base URL, its process (the supervisor, whose
    children are the API and the workers) and every stderr line so far (drained in a thread)."""

    base: str
    process: subprocess.Popen[bytes]
    log: list[str]


@contextmanager
def app_process(
    read_timeout_s: float = 90, env: Mapping[str, str] | None = None
) -> Iterator[RunningApp]:
    """`iconmarket run --no-stack --no-demo` on a free port, with ``env`` over this process's
    environment; yields it once the API serves, then stops it with Ctrl-C and checks it exits
    cleanly. Queries may wait ``read_timeout_s`` for a position, since the projections may first
    replay the test run's whole history."""
    port = free_port()
    child_env = {
        **os.environ,
        "ICONMARKET_API_PORT": str(port),
        "ICONMARKET_READ_YOUR_WRITES_TIMEOUT_S": str(read_timeout_s),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "run", "--no-stack", "--no-demo"],
        env=child_env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        bufsize=0,
    )
    seen: list[str] = []
    try:
        seen = _wait_for_log(proc, "Application startup complete", timeout_s=90)
        # Keep draining stderr, so a full pipe never blocks the children's logging, and so a
        # process that died can be named below.
        drain = threading.Thread(target=_drain, args=(proc, seen), daemon=True)
        drain.start()
        yield RunningApp(f"http://127.0.0.1:{port}", proc, seen)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        assert code == 0, f"iconmarket run exited {code}; stderr ended:\n{''.join(seen)[-6000:]}"


@contextmanager
def running_app(read_timeout_s: float = 90) -> Iterator[str]:
    """`app_process`, yielding only its base URL."""
    with app_process(read_timeout_s) as app:
        yield app.base


def _drain(proc: subprocess.Popen[bytes], into: list[str]) -> None:
    assert proc.stderr is not None
    for raw in iter(proc.stderr.readline, b""):
        into.append(raw.decode(errors="replace"))


def test_run_serves_ready_and_stops_on_ctrl_c() -> None:
    port = free_port()
    env = {**os.environ, "ICONMARKET_API_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "run", "--no-stack"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        bufsize=0,  # unbuffered, so select() and readline() agree on what is left to read
    )
    try:
        lines = _wait_for_log(proc, "Application startup complete", timeout_s=90)
        assert any("iconmarket is running" in line for line in lines)
        if not any('"relay active"' in line and '"log_name": "catalog"' in line for line in lines):
            _wait_for_log(proc, '"log_name": "catalog"', timeout_s=30)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'iconmarket_relay_active{log="catalog"} 1.0' in metrics
        response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["down"] == []
        live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5)
        access = _wait_for_log(proc, '"path": "/health/live"', timeout_s=10)
        entry = json.loads(access[-1])
        assert entry["request_id"] == live.headers["x-request-id"]
        assert entry["status"] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0
    try:
        httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
        still_serving = True
    except httpx.ConnectError:
        still_serving = False
    assert still_serving is False
