"""The one paged reader of a notification log: what follows a position, a page at a time.

Every reader of a context's log in position order goes through here — the relay's batches
(`read_after`), rebuilds and replays, the batch re-render, the payment reconciler, the auditors'
scans and exports (`pages`) — so the paging rule is written once: each page holds the items
after the last one of the page before, a page shorter than asked for (or an empty one) is the
end, and an ``until`` bound keeps a reader to the head it started from while the log grows
(reading on to it: see `pages`).

It lives beside the event store it reads (not in ``stream/``): the payment reconciler, a
command-side job, reads the log too, and the command side imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
PAGE = 1_000

Progress = Callable[[str, int, int], None]
"""How long work over logs reports: (label, units done, units known so far). One type for the
rebuild, the audit's replay, verify and export, the batch re-render and the CLI's bars."""

Read = Callable[[int, int], Sequence[T]]
"""``read(after, limit)``: at most ``limit`` items with positions above ``after``, in order."""


class Notifications(Protocol):
    """What `pages_of` needs of an event store's recorder (eventsourcing's PostgreSQL one)."""

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Any]: ...


def pages(
    read: Read[T],
    position: Callable[[T], int],
    *,
    after: int = 0,
    until: int | None = None,
    page: int = PAGE,
) -> Iterator[list[T]]:
    """The pages of the items ``read`` gives after ``after``, up to ``until``.

    Without ``until`` the walk ends at a short page: the end of the log as it is then. With
    it, a short page ends the walk only when it reaches ``until`` or is empty: positions are
    taken when a transaction starts, so a head read from the log (the highest committed
    position) may stand above positions whose transactions commit a moment later, and the
    next read finds them.
    """
    while until is None or after < until:
        items = list(read(after, page))
        short = len(items) < page
        if until is not None:
            items = [item for item in items if position(item) <= until]
        if not items:
            return
        yield items
        if short and until is None:
            return
        after = position(items[-1])


def read_after(
    recorder: Notifications,
    after: int,
    limit: int,
    *,
    until: int | None = None,
    topics: Sequence[str] = (),
) -> Sequence[Any]:
    """At most ``limit`` notifications of ``recorder``'s log after position ``after`` (up to
    ``until``), of ``topics`` only when given."""
    return recorder.select_notifications(
        start=after + 1, limit=limit, stop=until, topics=topics, inclusive_of_start=True
    )


def pages_of(
    recorder: Notifications,
    *,
    after: int = 0,
    until: int | None = None,
    page: int = PAGE,
    topics: Sequence[str] = (),
) -> Iterator[list[Any]]:
    """The notifications of ``recorder``'s log after ``after`` (up to ``until``), by pages."""

    def read(start: int, limit: int) -> Sequence[Any]:
        return read_after(recorder, start, limit, until=until, topics=topics)

    return pages(read, notification_position, after=after, until=until, page=page)


def notification_position(notification: Any) -> int:
    return int(notification.id)
