"""The budgets hold across API worker processes: the real API (uvicorn, two workers) lets
exactly a budget's quota through however the requests are spread over the workers, because the
counters are in Redis, not in a worker. A counter in each process would let each worker pass
the whole quota.

The client address is the connection's (X-Forwarded-For is ignored) unless the connection
comes from a configured trusted proxy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import eventually, free_port, wait_until_live

pytestmark = pytest.mark.integration

QUOTA = 10
REQUESTS = 3 * QUOTA


@contextmanager
def api(env: Mapping[str, str]) -> Iterator[tuple[str, Path]]:
    """`iconmarket api` on a free port with ``env`` over this process's environment (and
    budgets of its own); yields its base URL and the file its JSON logs go to."""
    port = free_port()
    child_env = {
        **os.environ,
        "ICONMARKET_API_PORT": str(port),
        "ICONMARKET_RATE_LIMIT_PREFIX": f"test-rl-e2e-{uuid.uuid4().hex[:12]}",
        **env,
    }
    with tempfile.NamedTemporaryFile("w+b", prefix="api-", suffix=".log") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "api"],
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_live(base, proc, output=Path(log.name))
            yield base, Path(log.name)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _login(base: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """A login without a password (401 at once: no hash to check)."""
    with httpx.Client(timeout=30) as client:
        return _login_on(client, base, headers)


def _login_on(
    client: httpx.Client, base: str, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    body = {"email": f"e2e-{uuid.uuid4().hex}@example.com"}
    return client.post(f"{base}/v1/auth/token", json=body, headers=dict(headers or {}))


def _pids_by_request(log: Path) -> dict[str, int]:
    """Which worker process served each request id, from the API's access log lines."""
    served = {}
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "request" and "request_id" in record:
            served[record["request_id"]] = record["pid"]
    return served


def _served_by(log: Path, request_id: str) -> int:
    served = eventually(lambda: request_id in _pids_by_request(log), 10, interval_s=0.02)
    assert served, f"no access log line for request {request_id}"
    return _pids_by_request(log)[request_id]


@contextmanager
def connections_to_each_worker(
    base: str, log: Path, per_worker: int
) -> Iterator[list[httpx.Client]]:
    """Keep-alive connections, ``per_worker`` to each of the two workers, interleaved: which
    worker accepts a connection is the kernel's choice, so connections are opened until each
    worker holds enough (a connection stays with the worker that accepted it)."""
    by_pid: dict[int, list[httpx.Client]] = {}
    opened: list[httpx.Client] = []
    try:
        while len(opened) < 200 and (
            len(by_pid) < 2 or min(len(c) for c in by_pid.values()) < per_worker
        ):
            client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=1))
            opened.append(client)
            request_id = f"pin-{uuid.uuid4().hex}"
            client.get(f"{base}/health/live", headers={"X-Request-ID": request_id})
            by_pid.setdefault(_served_by(log, request_id), []).append(client)
        assert len(by_pid) == 2, f"every connection went to one worker: {list(by_pid)}"
        first, second = (clients[:per_worker] for clients in by_pid.values())
        yield [client for pair in zip(first, second, strict=True) for client in pair]
    finally:
        for client in opened:
            client.close()


def test_two_workers_share_one_budget() -> None:
    env = {
        "ICONMARKET_API_WORKERS": "2",
        "ICONMARKET_RATE_LIMIT_AUTH_PER_IP": f"{QUOTA}/minute",
        # Redis is up: a slow check here is a loaded machine, which must not fail open.
        "ICONMARKET_RATE_LIMIT_TIMEOUT_S": "10",
    }
    with (
        api(env) as (base, log),
        connections_to_each_worker(base, log, REQUESTS // 2) as clients,
        ThreadPoolExecutor(max_workers=len(clients)) as pool,
    ):
        ids = [f"login-{uuid.uuid4().hex}" for _ in clients]
        answers = list(
            pool.map(
                lambda pair: _login_on(pair[0], base, {"X-Request-ID": pair[1]}),
                zip(clients, ids, strict=True),
            )
        )
        pids = [_served_by(log, request_id) for request_id in ids]

    by_worker = {pid: pids.count(pid) for pid in pids}
    assert sorted(by_worker.values()) == [REQUESTS // 2, REQUESTS // 2], by_worker
    statuses = [r.status_code for r in answers]
    assert (statuses.count(401), statuses.count(429)) == (QUOTA, REQUESTS - QUOTA)
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["ratelimit-policy"] == f'"auth-ip";q={QUOTA};w=60'
    assert refused.headers["ratelimit"].startswith('"auth-ip";r=0;t=')
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_x_forwarded_for_counts_only_behind_a_trusted_proxy() -> None:
    quota = {"ICONMARKET_RATE_LIMIT_AUTH_PER_IP": "2/minute"}
    alice, bob = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}

    with api(quota) as (base, _):
        direct = [_login(base, alice).status_code, _login(base, bob).status_code]
        direct.append(_login(base, {"X-Forwarded-For": "198.51.100.99"}).status_code)
    # Not behind a proxy: whatever the header says, everyone is 127.0.0.1.
    assert direct == [401, 401, 429]

    with api({**quota, "ICONMARKET_RATE_LIMIT_TRUSTED_PROXIES": "127.0.0.1/32"}) as (base, _):
        for_alice = [_login(base, alice).status_code for _ in range(3)]
        spoofed = _login(base, {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}).status_code
        for_bob = _login(base, bob).status_code
    # Behind it: each forwarded client has its own budget, and an entry the client wrote to
    # the left of the proxy's does not buy a fresh one.
    assert (for_alice, spoofed, for_bob) == ([401, 401, 429], 429, 401)
