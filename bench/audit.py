"""Audit: `audit verify` and `audit replay` rates on the whole dev store (events/s, medians).

Goals on 2 cores: verify >= 50,000 events/s (a server-side cursor in large binary batches, the
chain recomputed with hashlib); replay >= 20,000 events/s into Redis (the carts and customers
projectors into a shadow key prefix, dropped afterwards).
"""

from __future__ import annotations

import os
import statistics
import uuid
from typing import Any

from infra.audit.replay import Projection, drop_all, replay_all
from infra.audit.verify import verify_context
from infra.bootstrap import bootstrap
from infra.rebuild import head

RUNS = int(os.environ.get("ICONMARKET_BENCH_RUNS", "3"))
VERIFIED = ("catalog", "commerce")
REPLAYED = (Projection("carts", ("commerce",)), Projection("customers", ("commerce",)))


def _median(rates: list[float]) -> float:
    return round(statistics.median(rates), 1)


def run() -> dict[str, Any]:
    container = bootstrap()
    dsn = container.settings.postgres_dsn
    results: dict[str, Any] = {}
    try:
        totals: list[float] = []
        for context in VERIFIED:
            verdicts = [verify_context(dsn, context) for _ in range(RUNS)]
            assert all(v.clean for v in verdicts), [v.breaks[:3] for v in verdicts]
            results[f"verify {context}"] = {
                "events": verdicts[-1].events,
                "events_per_s (median)": _median([v.rate for v in verdicts]),
                "runs": RUNS,
            }
            totals.append(statistics.median(v.seconds for v in verdicts))
        events = sum(results[f"verify {c}"]["events"] for c in VERIFIED)
        results["verify all of the above"] = {
            "events": events,
            "events_per_s (median)": round(events / sum(totals), 1),
            "runs": RUNS,
        }
        until = {"commerce": head(container, "commerce")}
        for projection in REPLAYED:
            rates, replayed = [], 0
            for _ in range(RUNS):
                name = f"bench-{uuid.uuid4().hex[:8]}"
                try:
                    done = replay_all(container, [projection], name, until)[projection.name]
                finally:
                    drop_all(container, [projection], name)
                rates.append(done.rate)
                replayed = done.events
            results[f"replay {projection.name} (Redis)"] = {
                "events": replayed,
                "events_per_s (median)": _median(rates),
                "runs": RUNS,
            }
    finally:
        container.close()
    return {
        "name": "audit: verify and replay",
        "unit": f"events/s, median of {RUNS} runs over the whole dev store",
        "results": results,
    }
