"""Blue/green rebuild of a projection from the event store's history.

History is read straight from each source log in PostgreSQL (the same events the relay
publishes, as the same envelopes) and applied by the projection's pure projector into a new
target (an index version or a key prefix) while the live one keeps serving and updating. Once
the new target has caught up with the log's head (hence with the live projection), the pointer
(alias / prefix) moves atomically; a last catch-up after the switch covers whatever the live
projection wrote to the old target in the meantime (writes are version-guarded, so replaying
them again is harmless).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from infra.bootstrap import Container
from infra.targets import Target
from stream.envelope import Envelope, to_envelope

PAGE = 5_000
# A catch-up pass that had fewer events than this left the new target close enough to switch.
SWITCH_WHEN_BEHIND = PAGE


Progress = Callable[[int, int], None]  # (events applied so far, events known to replay)


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
    start = after
    while start < until:
        notifications = app.recorder.select_notifications(
            start=start, limit=page, stop=until, inclusive_of_start=False
        )
        if not notifications:
            return
        yield [to_envelope(context, n.id, app.mapper.to_domain_event(n)) for n in notifications]
        start = notifications[-1].id


def head(container: Container, context: str) -> int:
    return container.applications.by_context(context).recorder.max_notification_id() or 0


def rebuild(
    container: Container,
    contexts: Sequence[str],
    target: Target,
    progress: Progress | None = None,
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
                    progress(applied, max(total, applied))
        return passed

    while catch_up() >= SWITCH_WHEN_BEHIND:
        pass
    target.settle(new)
    old = target.switch(new)
    catch_up()
    target.settle(new)
    return RebuildResult(new, old, applied, time.perf_counter() - began, dict(reached))
