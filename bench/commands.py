"""Add-to-cart through HTTP (wrk → uvicorn → bus → PostgreSQL), concurrency 1, 16 and 64,
with and without group commit: commands/s and latency percentiles.

Every request adds a different icon to a cart (a repeat would be refused), so each run gets fresh
carts. Goal on 2 cores: >= 2,000 commands/s at p99 <= 50 ms.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.server import api_server
from commands import messages as m
from commands.bus import CommandBus
from commands.policy import Actor
from infra.bootstrap import Container, bootstrap
from tests.support import ctx, published_catalog

CONCURRENCY = (1, 16, 64)
DURATION_S = int(os.environ.get("ICONMARKET_BENCH_SECONDS", "8"))
WARMUP_S = 3
ICONS = 80
CARTS_PER_RUN = 400
CUSTOMERS = 20
LUA = Path(__file__).resolve().parent / "wrk" / "add_to_cart.lua"


def _pairs_file(container: Container, icon_ids: tuple[uuid.UUID, ...], run: str) -> Path:
    bus: CommandBus = container.bus
    customers = [f"bench-{run}-{n}" for n in range(CUSTOMERS)]
    tokens = {
        c: container.tokens.issue(Actor(c, frozenset({"customer"}))).access_token for c in customers
    }
    futures = [
        (
            customers[n % CUSTOMERS],
            bus.submit(m.OpenCart(currency="USD"), ctx(customers[n % CUSTOMERS], "customer")),
        )
        for n in range(CARTS_PER_RUN)
    ]
    carts = [(owner, future.result().aggregate_id) for owner, future in futures]
    lines = [f"{cart} {icon} {tokens[owner]}" for icon in icon_ids for owner, cart in carts]
    path = Path(tempfile.mkstemp(prefix="iconmarket-bench-", suffix=".pairs")[1])
    path.write_text("\n".join(lines) + "\n")
    return path


def _wrk(base: str, concurrency: int, pairs: Path, seconds: int = DURATION_S) -> dict[str, Any]:
    threads = min(2, concurrency)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(LUA),
            base,
        ],
        env={
            **os.environ,
            "ICONMARKET_BENCH_PAIRS": str(pairs),
            "ICONMARKET_BENCH_THREADS": str(threads),
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"WRKJSON (\{.*\})", out)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    return {
        "commands_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "requests": raw["requests"],
        "failed": raw["non2xx"] + raw["socket_errors"],
    }


def run() -> dict[str, Any]:
    container = bootstrap()
    results: dict[str, Any] = {}
    try:
        catalog = published_catalog(
            container.bus, f"bench-owner-{uuid.uuid4().hex[:6]}", prices=(100,) * ICONS
        )
        for group_commit, workers in ((True, 1), (False, 1), (True, 2), (False, 2)):
            mode = "group commit" if group_commit else "one transaction per command"
            mode += f", {workers} worker{'s' if workers > 1 else ''}"
            env = {
                "ICONMARKET_GROUP_COMMIT": str(group_commit).lower(),
                "ICONMARKET_API_WORKERS": str(workers),
            }
            with api_server(env) as base:
                # Warm up (first requests pay imports, connections and cold caches); not reported.
                warmup = _pairs_file(container, catalog.icon_ids, uuid.uuid4().hex[:6])
                try:
                    _wrk(base, 16, warmup, seconds=WARMUP_S)
                finally:
                    warmup.unlink()
                for concurrency in CONCURRENCY:
                    pairs = _pairs_file(container, catalog.icon_ids, uuid.uuid4().hex[:6])
                    try:
                        results[f"{mode}, concurrency {concurrency}"] = _wrk(
                            base, concurrency, pairs
                        )
                    finally:
                        pairs.unlink()
    finally:
        container.close()
    return {
        "name": "add to cart over HTTP",
        "unit": f"wrk, {DURATION_S}s per run",
        "results": results,
    }
