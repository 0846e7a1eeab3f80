"""The API contract is exact: schemathesis runs over the whole OpenAPI document against the real
API, with every check and every phase (examples, coverage, fuzzing, stateful), once per role, and
finds nothing.

The API runs as `iconmarket api` on a scratch event store of this test's own (dropped at the
end, and checked gone), so what the fuzzer creates reaches nobody else's tests. Each role gets a
token of its own; the anonymous run sends none and takes the whole document, each role's run the
operations that take a bearer token (the others answer every caller alike, which the
authorization matrix checks actor by actor). The seed and the number of examples are fixed, so
a run is repeatable and fits CI.

Two settings of the run say what this deployment is, not what the checks accept:

- ``allow-extra-parameters = false``: schemathesis would otherwise send headers and query
  parameters the document does not name and expect a refusal. HTTP lets any request carry
  headers an API does not know (proxies and tracers add them) and the API ignores unknown query
  parameters; unknown body fields are refused, which the document says (``additionalProperties:
  false``) and tests/unit/test_contract_rules.py checks struct by struct.
- The operations that wait for ``min_position`` may answer 503 ``stale``: the test's API runs
  without a relay and projections (its scratch log is never projected), so a wait for one of
  its positions is stale by construction. Every other 5xx is a failure, there as anywhere.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from api.auth import TokenService
from api.contract import BEARER
from commands.policy import Actor
from infra.audit.scratch import scratch_database
from infra.settings import RATE_LIMIT_BUDGETS, Settings, env_name
from tests.support import free_port, wait_until_live

SEED = 20261203
MAX_EXAMPLES = 5
ROLES = ("anonymous", "customer", "contributor", "admin", "auditor")
PARALLEL_RUNS = 2
RUN_TIMEOUT_S = 240
# The test's own limit: every role's run at its limit, two at a time, and the API's start.
TEST_TIMEOUT_S = RUN_TIMEOUT_S * -(-len(ROLES) // PARALLEL_RUNS) + 120
STALE_ALLOWED = ["2xx", "3xx", "4xx", "503"]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@dataclass(frozen=True)
class Run:
    role: str
    status: int
    failures: int
    output: str

    @property
    def cases(self) -> int:
        found = re.search(r"(\d+) generated", self.output.split("SUMMARY")[-1])
        return int(found.group(1)) if found else 0

    def failed_sections(self) -> str:
        """The report's failure sections (or its end when it has none)."""
        found = self.output.find("=== FAILURES ===")
        return self.output[found:][:12_000] if found >= 0 else self.output[-4000:]


@contextmanager
def contract_api(scratch: Settings) -> Iterator[str]:
    """`iconmarket api` on a free port over ``scratch``'s event store, with budgets no fuzzer
    reaches (the budgets are tested in tests/integration/test_rate_limits.py)."""
    port = free_port()
    env = {
        **os.environ,
        env_name("api_port"): str(port),
        env_name("postgres_db"): scratch.postgres_db,
        # No relay projects the scratch log: a wait could only time out, so it is refused at once.
        env_name("read_your_writes_max_waiters"): "0",
        **{env_name(name): "1000000/minute" for name in RATE_LIMIT_BUDGETS},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(base, proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_config(document: Mapping[str, object]) -> str:
    """The run's schemathesis.toml: see the module's docstring for why each setting."""
    waiting = sorted(
        str(operation["operationId"])
        for item in document["paths"].values()  # type: ignore[attr-defined]
        for operation in item.values()
        if any(p.get("name") == "min_position" for p in operation.get("parameters", []))
    )
    lines = [
        "[auth]",
        "auto-signup = false",  # the anonymous run stays anonymous
        "[generation]",
        "allow-extra-parameters = false",
        'database = "none"',  # no examples replayed from earlier runs: the seed decides
        "[phases.examples]",
        "fill-missing = true",  # the examples phase runs on every operation
    ]
    for operation_id in waiting:
        lines += [
            "[[operations]]",
            f'include-operation-id = "{operation_id}"',
            f"checks.not_a_server_error.expected-statuses = {json.dumps(STALE_ALLOWED)}",
        ]
    return "\n".join(lines) + "\n"


def tokenless(document: Mapping[str, object]) -> list[str]:
    """The operations that take no bearer token."""
    return sorted(
        str(operation["operationId"])
        for item in document["paths"].values()  # type: ignore[attr-defined]
        for operation in item.values()
        if operation.get("security") != [{BEARER: []}]
    )


def schemathesis(base: str, role: str, token: str | None, workdir: Path, skipped: list[str]) -> Run:
    workdir.mkdir()
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(workdir.parent / "schemathesis.toml"),
        "run",
        f"{base}/schema/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--no-color",
    ]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    for operation_id in skipped:
        command += ["--exclude-operation-id", operation_id]
    done = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    output = done.stdout + done.stderr
    summary = re.search(r"(\d+) failures?", output.split("SUMMARY")[-1])
    failures = int(summary.group(1)) if summary else (0 if done.returncode == 0 else -1)
    return Run(role, done.returncode, failures, output)


def _database_exists(settings: Settings, name: str) -> bool:
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return row is not None


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_schemathesis_finds_nothing_in_the_whole_document_for_any_role(
    settings: Settings, tmp_path: Path
) -> None:
    tokens = TokenService(settings.jwt_secret)
    role_tokens = {
        role: None
        if role == "anonymous"
        else tokens.issue(Actor(str(uuid.uuid4()), frozenset({role}))).access_token
        for role in ROLES
    }
    began, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with (
        scratch_database(settings, prefix="iconmarket_contract") as scratch,
        contract_api(scratch) as base,
    ):
        document = httpx.get(f"{base}/schema/openapi.json", timeout=10).json()
        (tmp_path / "schemathesis.toml").write_text(run_config(document))
        public = tokenless(document)
        assert "createFamily" not in public
        assert {"getLiveness", "searchIcons", "registerAccount"} <= set(public)

        def run(role: str) -> Run:
            token = role_tokens[role]
            return schemathesis(base, role, token, tmp_path / role, public if token else [])

        with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
            runs = list(pool.map(run, ROLES))
    took = time.monotonic() - began
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert not _database_exists(settings, scratch.postgres_db), "the scratch store was left"
    failed = [run for run in runs if run.status != 0 or run.failures != 0]
    assert not failed, "\n\n".join(
        f"--- {run.role}: exit {run.status}, {run.failures} failures ---\n{run.failed_sections()}"
        for run in failed
    )
    assert [run.failures for run in runs] == [0] * len(ROLES)
    cpu = used.ru_utime + used.ru_stime - before.ru_utime - before.ru_stime
    print(f"schemathesis seed {SEED}, {MAX_EXAMPLES} examples, {len(ROLES)} roles: {took:.0f} s")
    print(f"(cpu of the API and schemathesis processes: {cpu:.0f} s on {os.cpu_count()} cores)")
    print(", ".join(f"{run.role}: {run.cases} cases, 0 failures" for run in runs))
