"""`audit replay`: the read models as of a point in history, rebuilt into named shadow targets.

The bound is either positions per log (``catalog:123,commerce:456``; each log's position is
its own) or a time: for a time, each log replays up to the last position whose event time is
at or before it (an event committed after a later-stamped one is still included, since logs
are replayed as position prefixes). The projectors are the live ones (`infra.rebuild.replay`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from psycopg.sql import SQL, Identifier

from commands.log import Progress
from infra.bootstrap import Container
from infra.rebuild import RebuildResult, head, replay
from infra.targets import RedisTarget, Target, shadow_index, shadow_of, target_for
from stream.envelope import Envelope

_POSITIONS = re.compile(r"^\s*[a-z]+:\d+\s*(,\s*[a-z]+:\d+\s*)*$")


@dataclass(frozen=True)
class Projection:
    """A projection and the logs it reads."""

    name: str
    contexts: tuple[str, ...]


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time with a zone (``Z`` or ``+hh:mm``); ValueError otherwise."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or +00:00")
    return value


def last_position_at(container: Container, context: str, at: dt.datetime) -> int:
    """The highest position of ``context``'s log whose event time is at or before ``at``."""
    recorder = container.applications.by_context(context).recorder
    query = SQL(
        "SELECT coalesce(max(notification_id), 0) AS position FROM {table} WHERE "
        "(convert_from(state, 'UTF8')::jsonb #>> '{{timestamp,_data_}}')::timestamptz <= %s"
    ).format(table=Identifier(recorder.datastore.schema, recorder.events_table_name))  # type: ignore[attr-defined]
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:  # type: ignore[attr-defined]
        curs.execute(query, (at,))
        row = curs.fetchone()
    return int(row["position"]) if row else 0


def resolve_until(container: Container, text: str, contexts: Sequence[str]) -> dict[str, int]:
    """Each of ``contexts``' last position to replay, from ``catalog:123,commerce:456``, a time,
    or ``head`` (every log's current head)."""
    if text.strip() == "head":
        return {context: head(container, context) for context in contexts}
    if _POSITIONS.match(text):
        named = {
            name.strip(): int(number)
            for name, number in (part.split(":") for part in text.split(","))
        }
        missing = [context for context in contexts if context not in named]
        if missing:
            raise ValueError(f"--until names no position for the log(s) {missing}")
        return {context: named[context] for context in contexts}
    at = parse_time(text)
    return {context: last_position_at(container, context, at) for context in contexts}


def shadow_target(container: Container, projection: str, name: str) -> Target:
    """The projection's target for the shadow ``name``. Popularity also writes its counts onto
    the catalog; in a shadow, onto the catalog's shadow index (never the live one)."""
    if projection == "popularity":
        from projections.popularity import apply as project_popularity
        from projections.popularity_view import PopularityView

        index = shadow_index(name)
        if not container.opensearch.indices.exists(index=index):
            raise ValueError("popularity is replayed with the catalog (it writes onto its index)")
        return RedisTarget(
            container.redis,
            "popularity",
            project_popularity,
            lambda client, prefix: PopularityView(
                client, container.opensearch, prefix=prefix, index=index
            ),
        )
    return target_for(projection, container.redis, container.opensearch)


def replay_all(
    container: Container,
    projections: Sequence[Projection],
    name: str,
    until: Mapping[str, int],
    progress: Progress | None = None,
) -> dict[str, RebuildResult]:
    """Replay each projection into its shadow ``name`` (the catalog before popularity, which
    writes onto it); returns each one's result. ``progress`` gets the projection's name."""
    results = {}
    for projection in sorted(projections, key=lambda p: p.name == "popularity"):
        target = shadow_target(container, projection.name, name)
        results[projection.name] = replay(
            container,
            projection.contexts,
            target,
            name,
            until,
            progress=progress,
            label=projection.name,
        )
    return results


def _nothing(_event: Envelope) -> list[object]:
    return []


def _no_view(_client: object, _prefix: str) -> None:
    return None


def drop_all(container: Container, projections: Sequence[Projection], name: str) -> dict[str, int]:
    """Delete the shadow ``name`` of each projection; returns what each held."""
    dropped = {}
    for projection in sorted(projections, key=lambda p: p.name == "catalog"):
        if projection.name == "popularity":  # its keys only: the catalog's index goes with it
            target: Target = RedisTarget(container.redis, "popularity", _nothing, _no_view)
        else:
            target = target_for(projection.name, container.redis, container.opensearch)
        dropped[projection.name] = target.drop(shadow_of(projection.name, name))
    return dropped
