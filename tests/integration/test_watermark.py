"""The log watermark on real PostgreSQL, Kafka and Redis: the relay's marks hold exactly the
offsets it produced, and a read model has reached a position only when every partition is
applied up to the mark, not when its highest applied position is past it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from redis.asyncio import Redis

from api.freshness import PositionBeyondHead, Watermark
from commands import messages as m
from infra.bootstrap import Container
from infra.settings import Settings
from projections.positions import ProjectionPositions, highest_positions, next_offsets
from stream.envelope import decode
from stream.relay import Relay
from stream.watermark import latest_mark
from tests.integration.test_relay import _consume
from tests.support import ctx, scratch_topic, wait_for_saved_position

CARTS = 12


@pytest.fixture
def relayed(container: Container, settings: Settings) -> Iterator[tuple[str, list[Any], int]]:
    """A scratch topic (3 partitions) the relay published a dozen new carts to, as one log of
    its own: (topic = log name, the consumed messages, the last cart's position)."""
    with scratch_topic(container, "test.watermark", 3) as topic:
        commerce = container.applications.commerce
        head = commerce.recorder.max_notification_id() or 0
        relay = Relay(
            commerce, settings, topic=topic, log_name=topic, start_after=head, idle_wait_s=0.2
        )
        opened = [
            container.bus.execute(m.OpenCart(currency="USD"), ctx(f"wm-{n}", "customer"))
            for n in range(CARTS)
        ]
        last = max(result.position for result in opened)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop,))
        thread.start()
        try:
            assert wait_for_saved_position(settings, topic, last, 30) >= last
        finally:
            stop.set()
            thread.join(timeout=20)
        mine = {result.position for result in opened}
        messages = [
            message
            for message in _consume(settings, topic, mine, timeout_s=20)
            if decode(message.value).position in mine
        ]
        assert sorted(decode(message.value).position for message in messages) == sorted(mine)
        yield topic, messages, last


def _reached(settings: Settings, container: Container, projection: str, log: str, at: int) -> bool:
    """Watermark.reached on a Redis client of this call's own event loop."""

    async def check() -> bool:
        redis = Redis(host=settings.redis_host, port=settings.redis_port)
        recorder = container.applications.commerce.recorder
        try:
            done, _ = await Watermark(projection, log, redis, recorder).reached(at)
            return done
        finally:
            await redis.aclose()

    return asyncio.run(check())


def test_the_mark_holds_the_offsets_the_relay_produced(
    settings: Settings, relayed: tuple[str, list[Any], int]
) -> None:
    topic, messages, last = relayed
    with psycopg.connect(settings.postgres_dsn) as conn:
        mark = latest_mark(conn, topic)
    assert mark is not None
    assert mark.position >= last
    produced = {
        f"{topic}/{message.partition}": message.offset + 1
        for message in sorted(messages, key=lambda message: message.offset)
    }
    assert len(produced) == 3  # a dozen aggregates' keys spread over every partition
    assert dict(mark.ends) == produced


def test_a_position_is_reached_only_when_every_partition_is_applied(
    settings: Settings, container: Container, relayed: tuple[str, list[Any], int]
) -> None:
    topic, messages, last = relayed
    projection = f"test-wm-{uuid.uuid4().hex[:8]}"
    positions = ProjectionPositions(container.redis)
    (newest,) = [message for message in messages if decode(message.value).position == last]
    lagging = next(
        message.partition
        for message in messages
        if message is not newest and (message.partition != newest.partition)
    )
    applied = [message for message in messages if message.partition != lagging]
    try:
        assert _reached(settings, container, projection, topic, 0) is True
        assert _reached(settings, container, projection, topic, last) is False
        # Every partition but one applied, the newest event among them: the highest applied
        # position is `last`, what a per-position check would take for fresh ...
        positions.record(
            projection,
            highest_positions(decode(message.value) for message in applied),
            next_offsets(applied),
        )
        assert positions.get(projection) == {"commerce": last}
        # ... but events before it lie unapplied on the lagging partition.
        assert _reached(settings, container, projection, topic, last) is False
        earliest = min(decode(message.value).position for message in messages)
        assert _reached(settings, container, projection, topic, earliest) is False
        positions.record(projection, {}, next_offsets(messages))
        assert _reached(settings, container, projection, topic, last) is True
        assert _reached(settings, container, projection, topic, earliest) is True
    finally:
        container.redis.delete(positions.key(projection), positions.offsets_key(projection))


def test_a_position_beyond_the_log_head_is_refused_at_once(
    settings: Settings, container: Container, relayed: tuple[str, list[Any], int]
) -> None:
    topic, _messages, _last = relayed
    with pytest.raises(PositionBeyondHead) as refused:
        _reached(settings, container, "test-wm-none", topic, 10**12)
    assert refused.value.wanted == 10**12
