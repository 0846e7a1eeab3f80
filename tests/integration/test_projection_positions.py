"""Projection positions on real Redis: they only move forward and each advance is announced."""

from __future__ import annotations

import subprocess
import sys
import uuid
from types import SimpleNamespace

from infra.bootstrap import Container
from projections.positions import ProjectionPositions, highest_positions, next_offsets
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
        assert positions.record(name, {}, {"t/0": 12, "t/1": 3}) == 2
        assert positions.record(name, {"commerce": 8}, {"t/0": 11, "t/1": 4}) == 2
        assert positions.record(name, {"commerce": 8}, {"t/0": 12}) == 0
        assert positions.offsets(name) == {"t/0": 12, "t/1": 4}
        assert positions.get(name) == {"commerce": 8, "catalog": 4}
        announced = [pubsub.get_message(timeout=5)["data"] for _ in range(4)]
        assert announced == [b"2", b"1", b"2", b"2"]  # one notice per call that advanced
        assert pubsub.get_message(timeout=0.2) is None
    finally:
        pubsub.close()
        container.redis.delete(positions.key(name), positions.offsets_key(name))


def test_the_highest_position_per_log_of_a_batch() -> None:
    envelopes = cart_envelopes()
    assert highest_positions(envelopes) == {"commerce": max(e.position for e in envelopes)}
    assert highest_positions([]) == {}


def test_the_next_offset_per_partition_of_a_batch() -> None:
    at = lambda topic, partition, offset: SimpleNamespace(  # noqa: E731
        topic=topic, partition=partition, offset=offset
    )
    batch = [at("t", 0, 4), at("t", 1, 9), at("t", 0, 7), at("u", 0, 0), at("t", 0, 5)]
    assert next_offsets(batch) == {"t/0": 8, "t/1": 10, "u/0": 1}
    assert next_offsets([]) == {}


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
