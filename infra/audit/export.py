"""`audit export`: the history as JSON lines, one public envelope (`stream.envelope`) per line.

Logs are written one after the other, each in position order, filtered by event time
(``since`` inclusive, ``until`` exclusive); the same bytes the relay publishes to Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from commands.log import Progress
from infra.audit.history import LogFilter, matching_rows, sources
from infra.bootstrap import Container
from stream.envelope import encode, to_envelope

PAGE = 5_000


def export(
    container: Container,
    contexts: Sequence[str],
    wanted: LogFilter,
    write: Callable[[bytes], object],
    progress: Progress | None = None,
) -> int:
    """Write every matching event of ``contexts`` as one JSON line; returns how many."""
    written = 0
    for app in sources(container):
        if app.context not in contexts:
            continue
        head = app.recorder.max_notification_id() or 0
        for rows in matching_rows(app, wanted, until=head, page=PAGE):
            for row in rows:
                envelope = to_envelope(
                    app.context, row.position, app.mapper.to_domain_event(row.stored)
                )
                write(encode(envelope) + b"\n")
            written += len(rows)
            if progress is not None and len(rows) == PAGE:
                progress(app.context, rows[-1].position, head)
        if progress is not None:
            progress(app.context, head, head)
    return written
