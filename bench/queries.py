"""Read side: rebuild rate per projection (events/s from PostgreSQL history into a new target),
then query latency under load against the real API, for search and for a cart: at saturation
(wrk, c connections) and at the goal's constant rate (vegeta).

Goals on 2 cores: cart p99 <= 5 ms at 2,000 rps; search p99 <= 30 ms at 500 rps; rebuild
>= 20,000 events/s into Redis and >= 10,000 events/s into OpenSearch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from typing import Any

from bench.server import api_server
from commands import messages as m
from commands.policy import Actor
from infra.bootstrap import bootstrap
from infra.rebuild import rebuild
from infra.targets import target_for
from tests.support import ctx, published_catalog

DURATION_S = int(os.environ.get("ICONMARKET_BENCH_SECONDS", "8"))
CONCURRENCY = (16, 64)
PROJECTIONS = {"carts": ("commerce",), "customers": ("commerce",), "catalog": ("catalog",)}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return round(float(value) * _UNITS[unit], 2)


def _wrk(url: str, concurrency: int, headers: dict[str, str]) -> dict[str, Any]:
    args = ["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{DURATION_S}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rps is None or len(percentiles) != 3:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return {
        "requests_per_s": float(rps.group(1)),
        "p50_ms": _ms(percentiles["50"]),
        "p90_ms": _ms(percentiles["90"]),
        "p99_ms": _ms(percentiles["99"]),
        "failed": int(non2xx.group(1)) if non2xx else 0,
    }


VEGETA = os.environ.get("ICONMARKET_VEGETA", "vegeta")
# The goals' rates: a constant-rate load (vegeta), so latency is measured at that rate rather
# than at saturation, where it is only queueing (wrk keeps c requests in flight, no matter what).
GOAL_RATES = {"search q=arrow": 500, "cart by id": 2_000}


def _vegeta(url: str, rate: int, headers: dict[str, str]) -> dict[str, Any]:
    target = f"GET {url}\n" + "".join(f"{name}: {value}\n" for name, value in headers.items())
    attack = subprocess.run(
        [VEGETA, "attack", f"-rate={rate}/1s", f"-duration={DURATION_S}s", "-max-workers=256"],
        input=target.encode(),
        capture_output=True,
        check=True,
    )
    report = subprocess.run(
        [VEGETA, "report", "-type=json"], input=attack.stdout, capture_output=True, check=True
    )
    data = json.loads(report.stdout)
    latencies = data["latencies"]
    return {
        "requests_per_s": round(float(data["throughput"]), 1),
        "p50_ms": round(latencies["50th"] / 1e6, 2),
        "p90_ms": round(latencies["90th"] / 1e6, 2),
        "p99_ms": round(latencies["99th"] / 1e6, 2),
        "failed": int(data["requests"]) - int(data["status_codes"].get("200", 0)),
    }


def run() -> dict[str, Any]:
    container = bootstrap()
    results: dict[str, Any] = {}
    try:
        owner = f"bench-q-{uuid.uuid4().hex[:6]}"
        catalog = published_catalog(container.bus, owner, prices=(100, 200, 300))
        customer = f"bench-q-cust-{uuid.uuid4().hex[:6]}"
        cart_id = container.bus.execute(m.OpenCart(currency="USD"), ctx(customer, "customer"))
        for icon_id in catalog.icon_ids:
            container.bus.execute(
                m.AddToCart(cart_id=cart_id.aggregate_id, product_kind="icon", product_id=icon_id),
                ctx(customer, "customer"),
            )
        # Rebuilding brings each view up to the log's head, so the queries below find the data.
        for name, contexts in PROJECTIONS.items():
            target = target_for(name, container.redis, container.opensearch)
            done = rebuild(container, contexts, target)
            results[f"rebuild {name}"] = {
                "events": done.events,
                "events_per_s": round(done.rate, 1),
                "seconds": round(done.seconds, 2),
            }
        token = container.tokens.issue(Actor(customer, frozenset({"customer"}))).access_token
        with api_server({"ICONMARKET_API_WORKERS": "2"}) as base:
            cases = {
                "search q=arrow": (f"{base}/v1/icons/search?q=arrow&size=20", {}),
                "cart by id": (
                    f"{base}/v1/carts/{cart_id.aggregate_id}",
                    {"Authorization": f"Bearer {token}"},
                ),
            }
            for case, (url, headers) in cases.items():
                _wrk(url, 16, headers)  # warm-up, not reported
                for concurrency in CONCURRENCY:
                    results[f"{case}, concurrency {concurrency}"] = _wrk(url, concurrency, headers)
                rate = GOAL_RATES[case]
                results[f"{case}, constant {rate} rps"] = _vegeta(url, rate, headers)
    finally:
        container.close()
    return {
        "name": "read side: rebuilds and queries",
        "unit": f"rebuild from PostgreSQL; wrk {DURATION_S}s per query run, 2 API workers",
        "results": results,
    }
