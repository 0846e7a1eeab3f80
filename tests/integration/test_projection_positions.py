"""Projection positions on real Redis: they only move forward and each advance is announced."""

from __future__ import annotations

import subprocess
import sys
import uuid

from infra.bootstrap import Container
from projections.positions import ProjectionPositions, highest_positions
from tests.support import cart_envelopes


def test_positions_only_advance_and_each_advance_is_published(container: Container) -> None:
    positions = ProjectionPositions(container.redis)
    name = f"test-{uuid.uuid4().hex[:8]}"
    pubsub = container.redis.pubsub()
    pubsub.subscribe(positions.channel(name))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    try:
        assert positions.get(name) == {}
        assert positions.record(name, {"commerce": 7, "catalog": 3}) == 2
        assert positions.record(name, {"commerce": 5, "catalog": 4}) == 1
        assert positions.record(name, {"commerce": 7}) == 0
        assert positions.get(name) == {"commerce": 7, "catalog": 4}
        announced = [pubsub.get_message(timeout=5)["data"] for _ in range(3)]
        assert announced == [b"catalog:3", b"commerce:7", b"catalog:4"]
        assert pubsub.get_message(timeout=0.2) is None
    finally:
        pubsub.close()
        container.redis.delete(positions.key(name))


def test_the_highest_position_per_log_of_a_batch() -> None:
    envelopes = cart_envelopes()
    assert highest_positions(envelopes) == {"commerce": max(e.position for e in envelopes)}
    assert highest_positions([]) == {}


def test_project_status_lists_every_projection_with_its_log() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "project", "status"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "carts" in line]
    assert len(rows) == 1
    assert "commerce" in rows[0]
