"""Reading the event store itself for auditors: one aggregate's history, its state at a version
or a time, and the logs of every context filtered by type, actor and time.

The one place where queries read the event store rather than the read models (CONVENTIONS 3).
Rows are rendered as the public envelope (`stream.envelope.to_envelope`, with its redactions)
plus the row's chain hash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import heapq
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Composable, Identifier

from commands import log
from commands.applications import ContextApplication
from commands.errors import AggregateNotFound
from infra.bootstrap import Container
from stream.envelope import REDACTED, to_envelope

PAGE = 1_000
CONTEXT_NAMES = ("catalog", "commerce", "identity", "audit")


def sources(container: Container) -> list[ContextApplication]:
    """Every log an auditor can read: the three contexts, then the audit-read log."""
    return [*container.applications.all(), container.audit_application]


def contexts(container: Container) -> list[str]:
    return [app.context for app in sources(container)]


def locate(container: Container, aggregate_id: uuid.UUID) -> ContextApplication:
    """The application whose log holds ``aggregate_id`` (ids are UUIDs, unique across logs)."""
    for app in sources(container):
        if app.recorder.select_events(aggregate_id, limit=1):
            return app
    raise AggregateNotFound(f"no aggregate {aggregate_id} in any context")


@dataclass(frozen=True)
class Row:
    """One stored event with its position and chain hash."""

    position: int
    stored: StoredEvent
    chain_hash: bytes | None


def select_rows(
    app: ContextApplication, where: Composable, params: Sequence[Any], limit: int
) -> list[Row]:
    recorder: Any = app.recorder
    query = SQL(
        "SELECT originator_id, originator_version, topic, state, notification_id, chain_hash "
        "FROM {table} WHERE "
    ).format(table=Identifier(recorder.datastore.schema, recorder.events_table_name))
    query += where + SQL(" LIMIT %s")
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(query, [*params, limit])
        return [
            Row(
                position=row["notification_id"],
                stored=StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                ),
                chain_hash=bytes(row["chain_hash"]) if row["chain_hash"] is not None else None,
            )
            for row in curs.fetchall()
        ]


def render(app: ContextApplication, row: Row) -> dict[str, Any]:
    """The envelope of ``row`` as a JSON-ready dict, plus ``chain_hash`` (hex)."""
    envelope = to_envelope(app.context, row.position, app.mapper.to_domain_event(row.stored))
    document: dict[str, Any] = msgspec.to_builtins(envelope)
    document["chain_hash"] = row.chain_hash.hex() if row.chain_hash is not None else None
    return document


def aggregate_events(
    container: Container, aggregate_id: uuid.UUID, after_version: int = 0, limit: int = 100
) -> tuple[str, list[dict[str, Any]], bool]:
    """``(context, events after after_version in version order (at most limit), more?)``."""
    app = locate(container, aggregate_id)
    rows = select_rows(
        app,
        SQL("originator_id = %s AND originator_version > %s ORDER BY originator_version"),
        [aggregate_id, after_version],
        limit + 1,
    )
    return app.context, [render(app, row) for row in rows[:limit]], len(rows) > limit


def _timestamps(app: ContextApplication, aggregate_id: uuid.UUID) -> list[tuple[int, dt.datetime]]:
    stored = app.recorder.select_events(aggregate_id)
    events = [app.mapper.to_domain_event(item) for item in stored]
    return [(event.originator_version, getattr(event, "timestamp")) for event in events]  # noqa: B009


def version_at(app: ContextApplication, aggregate_id: uuid.UUID, at: dt.datetime) -> int:
    """The last version whose event's timestamp is at or before ``at``."""
    versions = [version for version, stamp in _timestamps(app, aggregate_id) if stamp <= at]
    if not versions:
        raise AggregateNotFound(f"aggregate {aggregate_id} did not exist yet at {at.isoformat()}")
    return max(versions)


def state_at(
    container: Container,
    aggregate_id: uuid.UUID,
    *,
    version: int | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The aggregate as it was at ``version``, or at time ``at`` (the last version at or
    before it), or at the earlier of the two when both are given (else now), as JSON.

    The repository replays from the nearest snapshot where the application keeps snapshots."""
    app = locate(container, aggregate_id)
    bounds = [version] if version is not None else []
    if at is not None:
        bounds.append(version_at(app, aggregate_id, at))
    wanted = min(bounds) if bounds else None
    head = app.recorder.select_events(aggregate_id, desc=True, limit=1)[0].originator_version
    if wanted is not None and not 1 <= wanted <= head:
        raise AggregateNotFound(f"aggregate {aggregate_id} has versions 1 to {head}, not {wanted}")
    aggregate: Any = app.repository.get(aggregate_id, version=wanted)
    kind = type(aggregate).__name__
    return {
        "aggregate_id": str(aggregate_id),
        "context": app.context,
        "aggregate_type": kind,
        "version": aggregate.version,
        "head_version": head,
        "at": at.isoformat() if at is not None else None,
        "state": attributes(aggregate, kind),
    }


def attributes(aggregate: object, kind: str) -> dict[str, Any]:
    """The aggregate's attributes (leading underscores dropped), without pending events and
    without the fields the public envelope never carries."""
    hidden = {
        field
        for name, fields in REDACTED.items()
        if name.startswith(f"{kind}.")
        for field in fields
    }
    found = {}
    for key, value in vars(aggregate).items():
        name = key.lstrip("_")
        if name == "pending_events" or name in hidden:
            continue
        found[name] = plain(value)
    return dict(sorted(found.items()))


def plain(value: Any) -> Any:  # noqa: PLR0911 - one branch per JSON mapping
    """``value`` as JSON-ready builtins."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(plain(key)): plain(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((plain(item) for item in value), key=str)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if hasattr(value, "__dict__"):
        return plain(vars(value))
    if hasattr(value, "__slots__"):
        return {slot: plain(getattr(value, slot)) for slot in value.__slots__}
    return str(value)


# A row's state as jsonb for the filters. jsonb refuses the escape of U+0000, which JSON allows
# (and a provider's text may carry): it is read as U+FFFD, in the filter's view only. An escaped
# backslash before "u0000" stays valid JSON too ("\\ufffd": a backslash, then text).
_STATE_JSON = SQL("replace(convert_from(state, 'UTF8'), '\\u0000', '\\ufffd')::jsonb")


@dataclass(frozen=True)
class LogFilter:
    """Which rows of a log: event type (``Cart.Opened``), actor, and event time bounds
    (``since`` inclusive, ``until`` exclusive)."""

    type: str | None = None
    actor: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def where(self) -> tuple[Composable, list[Any]]:
        clause: Composable = SQL("notification_id >= %s")
        params: list[Any] = []
        stamp = SQL("({} #>> '{{timestamp,_data_}}')::timestamptz").format(_STATE_JSON)
        if self.type is not None:
            clause += SQL(" AND split_part(topic, ':', 2) = %s")
            params.append(self.type)
        if self.actor is not None:
            clause += SQL(" AND {} ->> 'actor' = %s").format(_STATE_JSON)
            params.append(self.actor)
        if self.since is not None:
            clause += SQL(" AND ") + stamp + SQL(" >= %s")
            params.append(self.since)
        if self.until is not None:
            clause += SQL(" AND ") + stamp + SQL(" < %s")
            params.append(self.until)
        return clause + SQL(" ORDER BY notification_id"), params


def scan(
    app: ContextApplication, wanted: LogFilter, start: int = 1, page: int = PAGE
) -> Iterator[list[dict[str, Any]]]:
    """The rendered rows of ``app``'s log from position ``start`` on that match, page by page."""
    for rows in matching_rows(app, wanted, after=start - 1, page=page):
        yield [render(app, row) for row in rows]


def matching_rows(
    app: ContextApplication,
    wanted: LogFilter,
    *,
    after: int = 0,
    until: int | None = None,
    page: int = PAGE,
) -> Iterator[list[Row]]:
    """The rows of ``app``'s log after ``after`` (up to ``until``) that match, page by page."""
    where, params = wanted.where()

    def read(start: int, limit: int) -> list[Row]:
        return select_rows(app, where, [start + 1, *params], limit)

    return log.pages(read, row_position, after=after, until=until, page=page)


def row_position(row: Row) -> int:
    return row.position


Cursor = dict[str, int]


_CURSOR_PART = f"(?:{'|'.join(CONTEXT_NAMES)}):[0-9]{{1,18}}"
CURSOR_PATTERN = f"^(?:[0-9]{{1,18}}|{_CURSOR_PART}(?:,{_CURSOR_PART})*)$"
"""The form of a log cursor (the API documents this very pattern): a position, or positions
per log, of at most 18 digits (a PostgreSQL bigint)."""
_CURSOR = re.compile(CURSOR_PATTERN)


def parse_cursor(text: str | None, names: Sequence[str]) -> Cursor:
    """``catalog:124,commerce:457`` → each log's first position to read (1 for a log it does
    not name; logs outside ``names`` are ignored); a bare number applies to every log in
    ``names``. Raises ValueError when it does not match `CURSOR_PATTERN`."""
    cursor = dict.fromkeys(names, 1)
    if not text:
        return cursor
    if not _CURSOR.search(text):
        raise ValueError(
            f"from_position {text!r} is not a position or <context>:<position> pairs with a "
            f"context of {list(CONTEXT_NAMES)}"
        )
    text = text.strip()
    if text.isdigit():
        return dict.fromkeys(names, int(text))
    for part in text.split(","):
        name, _, number = part.partition(":")
        if name in cursor:
            cursor[name] = int(number)
    return cursor


def format_cursor(cursor: Cursor) -> str:
    return ",".join(f"{name}:{position}" for name, position in cursor.items())


def _merge_key(row: dict[str, Any]) -> tuple[dt.datetime, str]:
    return dt.datetime.fromisoformat(row["occurred_at"]), row["context"]


def log_page(
    container: Container, names: Sequence[str], cursor: Cursor, wanted: LogFilter, limit: int
) -> tuple[list[dict[str, Any]], Cursor, bool]:
    """Up to ``limit`` matching rows across the logs ``names``, merged by event time (each log
    stays in position order); the cursor to continue from, and whether more may follow."""
    apps = {app.context: app for app in sources(container) if app.context in names}
    fetched: dict[str, list[dict[str, Any]]] = {}
    for name, app in apps.items():
        where, params = wanted.where()
        rows = select_rows(app, where, [cursor[name], *params], limit + 1)
        fetched[name] = [render(app, row) for row in rows]
    merged = heapq.merge(*fetched.values(), key=_merge_key)
    taken = [row for _, row in zip(range(limit), merged, strict=False)]
    following = dict(cursor)
    for row in taken:
        following[row["context"]] = row["position"] + 1
    more = sum(len(rows) for rows in fetched.values()) > len(taken)
    return taken, following, more
