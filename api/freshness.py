"""Read-your-writes by log watermark: a query with ``min_position`` P answers once its read model
has applied every event at or before P of the log it reads, on every partition (the relay's
mark of P against the projection's applied offsets, `stream.watermark`), or answers 503 stale.

So any position a command returned can be waited on at every read model of its context: one
that touched several aggregates, one that wrote nothing (it returns the log's head), an
idempotent repeat. A position the read model already passed answers at once; one beyond the
log's head answers at once with 422 ``position_beyond_head`` (no command returned it), never
after a wait. Waiters are woken by the projection's advance notices; only while the relay has
not yet recorded the mark of P (its batch is between Kafka's acknowledgement and the mark's
commit) do they look again every ``MARK_POLL_S``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from litestar.params import HeaderParameter, QueryParameter

from projections.positions import ProjectionPositions
from stream.watermark import Mark, covering_mark

Document = dict[str, Any]
MARK_POLL_S = 0.05

MAX_POSITION = 2**63 - 1
"""The largest position a log can have (its notification ids are PostgreSQL bigints)."""
_POSITION = "A position a command returned: the answer waits until the read model has it."
# A query's read-your-writes position: ``?min_position=`` or the ``X-Min-Position`` header.
MinPosition = Annotated[
    int | None,
    QueryParameter(name="min_position", ge=0, le=MAX_POSITION, description=_POSITION),
]
XMinPosition = Annotated[
    int | None,
    HeaderParameter(name="x-min-position", ge=0, le=MAX_POSITION, description=_POSITION),
]


def wanted_position(query: int | None, header: int | None) -> int | None:
    """The position to wait for: the query parameter wins over the header."""
    return query if query is not None else header


class StaleRead(Exception):
    """The read model did not reach the requested position in time."""

    code = "stale"

    def __init__(self, wanted: int, reached: int | None, waited_s: float) -> None:
        super().__init__(
            f"the read model has not reached position {wanted} yet "
            f"(it is at {reached if reached is not None else 'nothing'}); retry shortly"
        )
        self.wanted = wanted
        self.reached = reached
        self.waited_s = waited_s


class PositionBeyondHead(Exception):
    """``min_position`` is past the log's last event: no command returned it, so no wait."""

    code = "position_beyond_head"

    def __init__(self, wanted: int, head: int) -> None:
        super().__init__(
            f"position {wanted} is beyond the log's last event ({head}); pass a position a "
            "command returned"
        )
        self.wanted = wanted
        self.head = head


@dataclass(frozen=True)
class Watermark:
    """One read model's side of the watermark: the projection that builds it, the log it reads,
    where the relay's marks are (PostgreSQL) and where its applied offsets are (Redis)."""

    projection: str
    log: str
    redis: Any
    """The asyncio Redis client."""
    recorder: Any
    """The log's application recorder: its datastore answers the marks, its head the rest."""
    max_waiters: int = 64
    """How many reads of this process may wait at once (over it: stale at once)."""

    @property
    def channel(self) -> str:
        return ProjectionPositions.channel(self.projection)

    async def reached(self, wanted: int) -> tuple[bool, bool]:
        """(whether the read model has applied every event at or before ``wanted``, whether the
        relay's mark of ``wanted`` exists); `PositionBeyondHead` past the log's head."""
        if wanted <= 0:
            return True, True
        mark = await asyncio.to_thread(self._mark, wanted)
        if mark is None:
            return False, False
        raw = await self.redis.hgetall(ProjectionPositions.offsets_key(self.projection))
        applied = {key.decode(): int(value) for key, value in raw.items()}
        return mark.reached_by(applied), True

    async def position(self) -> int | None:
        """The highest position the projection applied from the log (for the stale answer)."""
        raw = await self.redis.hget(ProjectionPositions.key(self.projection), self.log)
        return None if raw is None else int(raw)

    def _mark(self, wanted: int) -> Mark | None:
        datastore = getattr(self.recorder, "datastore", None)
        mark = None
        if datastore is not None:  # the in-memory store has no relay, so no marks
            with datastore.get_connection() as conn:
                mark = covering_mark(conn, self.log, wanted)
        if mark is None:
            head = self.recorder.max_notification_id() or 0
            if wanted > head:
                raise PositionBeyondHead(wanted, head)
        return mark


# Each read model: (the projection that builds it, the log it reads).
CARTS = ("carts", "commerce")
CUSTOMERS = ("customers", "commerce")
CATALOG = ("catalog", "catalog")


def watermark(container: Any, projection: str, log: str) -> Watermark:
    recorder = container.applications.by_context(log).recorder
    bound = container.settings.read_your_writes_max_waiters
    return Watermark(projection, log, container.redis_async, recorder, bound)


class _Waiters:
    """The reads of this process waiting for a position now (every event loop of it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def enter(self, bound: int) -> bool:
        with self._lock:
            if self.count >= bound:
                return False
            self.count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.count -= 1


WAITERS = _Waiters()


async def read_fresh(
    read: Callable[[], Awaitable[Document | None]],
    *,
    mark: Watermark,
    min_position: int | None,
    timeout_s: float,
) -> Document | None:
    """``read()`` once the read model reached ``min_position`` (at once without one)."""
    if min_position is None:
        return await read()
    done, _ = await mark.reached(min_position)
    if done:
        return await read()
    if not WAITERS.enter(mark.max_waiters):  # each waiter holds a connection: refuse, cheaply
        raise StaleRead(min_position, await mark.position(), 0.0)
    try:
        await _wait(mark, min_position, timeout_s)
    finally:
        WAITERS.leave()
    return await read()


async def _wait(mark: Watermark, min_position: int, timeout_s: float) -> None:
    """Until the read model reached ``min_position``, woken by its advance notices; StaleRead
    after ``timeout_s``."""
    began = time.monotonic()
    pubsub = mark.redis.pubsub()
    await pubsub.subscribe(mark.channel)
    try:
        while True:  # look again once subscribed, so no advance slips between
            done, marked = await mark.reached(min_position)
            if done:
                break
            remaining = timeout_s - (time.monotonic() - began)
            if remaining <= 0:
                raise StaleRead(min_position, await mark.position(), timeout_s)
            wait = remaining if marked else min(remaining, MARK_POLL_S)
            await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
    finally:
        await pubsub.unsubscribe(mark.channel)
        await pubsub.aclose()
