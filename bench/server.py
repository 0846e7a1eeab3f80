"""Start the real API (uvicorn, a separate process) for a benchmark, and stop it afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def api_server(env: dict[str, str], timeout_s: float = 60) -> Iterator[str]:
    """Yield the base URL of an API process started with ``env`` on top of this one's."""
    port = free_port()
    child_env = {
        **os.environ,
        # The benchmarks measure the service from one address at thousands of requests a
        # second: the rate limits would measure themselves.
        "ICONMARKET_RATE_LIMIT_ENABLED": "false",
        **env,
        "ICONMARKET_API_PORT": str(port),
        "ICONMARKET_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "api"],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start (exit code {proc.returncode})")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
