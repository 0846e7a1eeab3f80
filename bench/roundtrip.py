"""One request-response round trip to each service through the app's own clients.

The floor under every later figure: a command, a projection write or a query cannot be faster than
the round trips it makes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.stats import summarize_ms
from infra.bootstrap import Container, bootstrap

ROUNDS = 300
WARMUP = 20


def _timed(operation: Callable[[], object], rounds: int = ROUNDS) -> list[float]:
    for _ in range(WARMUP):
        operation()
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - began)
    return samples


def _operations(container: Container) -> dict[str, Callable[[], object]]:
    key = f"bench:{uuid.uuid4().hex}"
    bucket = container.settings.s3_bucket_private
    container.s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 1024)

    def postgres() -> object:
        with container.postgres_pool.connection() as conn:
            return conn.execute("SELECT 1").fetchone()

    def s3_get() -> bytes:
        body: bytes = container.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    return {
        "postgres SELECT 1 (pooled)": postgres,
        "redis SET+GET": lambda: (container.redis.set(key, "v"), container.redis.get(key)),
        "opensearch cluster health": container.opensearch.cluster.health,
        "s3 GET 1 KiB object": s3_get,
        "stripe-mock GET balance": container.stripe.v1.balance.retrieve,
    }


def run() -> dict[str, Any]:
    container = bootstrap()
    try:
        results = {name: summarize_ms(_timed(op)) for name, op in _operations(container).items()}
    finally:
        container.close()
    return {"name": "service round trips", "unit": "ms per operation", "results": results}
