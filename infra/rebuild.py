"""Blue/green rebuild of a projection from the event store's history.

History is read straight from each source log in PostgreSQL (the same events the relay
publishes, as the same envelopes) and applied by the projection's pure projector into a new
target (an index version or a key prefix) while the live one keeps serving and updating. Once
the new target has caught up with the log's head (hence with the live projection), the pointer
(alias / prefix) moves atomically; a last catch-up after the switch covers whatever the live
projection wrote to the old target in the meantime (writes are version-guarded, so replaying
them again is harmless).

`replay` is the audit's variant (`iconmarket audit replay`): history up to a bound per log, into
a named shadow target, never switched.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from commands.log import Progress, pages_of
from infra.bootstrap import Container
from infra.targets import Target
from stream.envelope import Envelope, to_envelope

PAGE = 5_000
# A catch-up pass that had fewer events than this left the new target close enough to switch.
SWITCH_WHEN_BEHIND = PAGE


Page = TypeVar("Page")


@dataclass
class RebuildResult:
    new_target: str
    old_target: str
    events: int
    seconds: float
    positions: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def history(
    container: Container, context: str, after: int, until: int, page: int = PAGE
) -> Iterator[list[Envelope]]:
    """The envelopes of ``context``'s log with positions in (after, until], a page at a time."""
    app = container.applications.by_context(context)
    for notifications in pages_of(app.recorder, after=after, until=until, page=page):
        yield [to_envelope(context, n.id, app.mapper.to_domain_event(n)) for n in notifications]


def prefetched(pages: Iterator[Page], depth: int = 2) -> Generator[Page, None, None]:
    """``pages``, read ahead by a thread: reading and decoding the next pages overlaps with
    applying this one (the view's writes wait on Redis / OpenSearch, releasing the GIL)."""
    ready: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                ready.put(page)
            ready.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            ready.put(exc)

    reader = threading.Thread(target=read, name="history-prefetch", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)


def head(container: Container, context: str) -> int:
    return container.applications.by_context(context).recorder.max_notification_id() or 0


def rebuild(
    container: Container,
    contexts: Sequence[str],
    target: Target,
    progress: Progress | None = None,
    *,
    label: str = "rebuild",
) -> RebuildResult:
    began = time.perf_counter()
    new = target.create()
    reached = dict.fromkeys(contexts, 0)
    applied = 0

    def catch_up() -> int:
        nonlocal applied
        goals = {context: head(container, context) for context in contexts}
        total = applied + sum(goals[c] - reached[c] for c in contexts)
        passed = 0
        for context in contexts:
            for page in history(container, context, reached[context], goals[context]):
                target.apply(new, page)
                reached[context] = page[-1].position
                applied += len(page)
                passed += len(page)
                if progress is not None:
                    progress(label, applied, max(total, applied))
        return passed

    while catch_up() >= SWITCH_WHEN_BEHIND:
        pass
    target.settle(new)
    old = target.switch(new)
    catch_up()
    target.settle(new)
    return RebuildResult(new, old, applied, time.perf_counter() - began, dict(reached))


def replay(
    container: Container,
    contexts: Sequence[str],
    target: Target,
    name: str,
    until: Mapping[str, int],
    *,
    progress: Progress | None = None,
    label: str = "replay",
) -> RebuildResult:
    """Replay each log up to its position in ``until`` (inclusive) into the new shadow target
    ``name`` (`Target.shadow`), without switching anything: an audit's picture of the read
    model as of that point, beside the live one."""
    began = time.perf_counter()
    new = target.shadow(name)
    total = sum(until[context] for context in contexts)
    applied = 0
    reached = dict.fromkeys(contexts, 0)
    for context in contexts:
        for page in prefetched(history(container, context, 0, until[context])):
            target.apply(new, page)
            reached[context] = page[-1].position
            applied += len(page)
            if progress is not None:
                progress(label, applied, max(total, applied))
    target.settle(new)
    return RebuildResult(new, "", applied, time.perf_counter() - began, dict(reached))
