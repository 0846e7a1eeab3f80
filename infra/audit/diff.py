"""`audit diff`: compare a projection's shadow with the live read model, or two shadows, and
write the report (JSON for machines, markdown for people).

Documents are keyed as stored (Redis key without its prefix; catalog document id); a document
present on one side only is listed as such; one present on both sides with different content is
listed with each differing field's two values.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.bootstrap import Container
from infra.targets import shadow_of, target_for
from projections.customer_view import dump as dump_customers

LIVE = "live"
REDIS_PATTERNS = {"carts": ("cart:*", "customer-carts:*"), "popularity": ("pop-*",)}
MARKDOWN_ROWS = 200


@dataclass
class ProjectionDiff:
    """One projection's comparison: counts, one-sided documents, changed fields."""

    projection: str
    left: str
    right: str
    left_count: int = 0
    right_count: int = 0
    only_left: list[str] = field(default_factory=list)
    only_right: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    @property
    def differences(self) -> int:
        return len(self.only_left) + len(self.only_right) + len(self.changed)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _redis_value(redis: Any, key: str) -> Any:
    kind = _text(redis.type(key))
    if kind == "hash":
        return {_text(k): _text(v) for k, v in redis.hgetall(key).items()}
    if kind == "zset":
        return {_text(m): s for m, s in redis.zrange(key, 0, -1, withscores=True)}
    if kind == "set":
        return sorted(_text(member) for member in redis.smembers(key))
    if kind == "string":
        return _text(redis.get(key))
    return {"type": kind}


def _redis_documents(redis: Any, prefix: str, patterns: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pattern in patterns:
        for raw in redis.scan_iter(match=f"{prefix}{pattern}", count=1000):
            key = _text(raw)
            found[key[len(prefix) :]] = _redis_value(redis, key)
    return dict(sorted(found.items()))


def _catalog_documents(client: Any, index: str) -> dict[str, Any]:
    client.indices.refresh(index=index)
    found: dict[str, Any] = {}
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "size": 1000,
            "sort": [{"id": "asc"}, {"kind": "asc"}],
            "query": {"match_all": {}},
        }
        if after is not None:
            body["search_after"] = after
        hits = client.search(index=index, body=body)["hits"]["hits"]
        if not hits:
            return found
        found.update({hit["_id"]: hit["_source"] for hit in hits})
        after = hits[-1]["sort"]


def where(container: Container, projection: str, side: str) -> str:
    """The live target of ``projection`` (side ``live``), or its shadow named ``side``."""
    if side == LIVE:
        return target_for(projection, container.redis, container.opensearch).live()
    return shadow_of(projection, side)


def documents(container: Container, projection: str, location: str) -> dict[str, Any]:
    """Every document of ``projection`` at ``location`` (key prefix or index)."""
    if projection == "catalog":
        return _catalog_documents(container.opensearch, location)
    if projection == "customers":
        return dump_customers(container.redis, location)
    if projection in REDIS_PATTERNS:
        return _redis_documents(container.redis, location, REDIS_PATTERNS[projection])
    raise ValueError(f"audit diff does not know the projection {projection!r}")


def compare(
    projection: str, left: str, right: str, a: Mapping[str, Any], b: Mapping[str, Any]
) -> ProjectionDiff:
    result = ProjectionDiff(projection, left, right, len(a), len(b))
    result.only_left = sorted(set(a) - set(b))
    result.only_right = sorted(set(b) - set(a))
    for key in sorted(set(a) & set(b)):
        if a[key] == b[key]:
            continue
        x, y = a[key], b[key]
        if isinstance(x, dict) and isinstance(y, dict):
            fields = sorted(set(x) | set(y))
            result.changed[key] = {f: [x.get(f), y.get(f)] for f in fields if x.get(f) != y.get(f)}
        else:
            result.changed[key] = {"": [x, y]}
    return result


def diff(
    container: Container, projections: Sequence[str], left: str, right: str
) -> list[ProjectionDiff]:
    """Compare side ``left`` with side ``right`` (each ``live`` or a shadow name)."""
    return [
        compare(
            projection,
            left,
            right,
            documents(container, projection, where(container, projection, left)),
            documents(container, projection, where(container, projection, right)),
        )
        for projection in projections
    ]


def report_json(results: Sequence[ProjectionDiff], left: str, right: str) -> dict[str, Any]:
    return {
        "left": left,
        "right": right,
        "generated_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "differences": sum(r.differences for r in results),
        "projections": {r.projection: {**asdict(r), "differences": r.differences} for r in results},
    }


def report_markdown(results: Sequence[ProjectionDiff], left: str, right: str) -> str:
    lines = [
        f"# Read-model diff: `{left}` vs `{right}`",
        "",
        "| projection | in left | in right | only left | only right | changed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.projection} | {r.left_count} | {r.right_count} | {len(r.only_left)} | "
            f"{len(r.only_right)} | {len(r.changed)} |"
        )
    total = sum(r.differences for r in results)
    lines += ["", "No differences." if total == 0 else f"{total} documents differ.", ""]
    for r in results:
        if not r.differences:
            continue
        lines += [f"## {r.projection}", ""]
        shown = 0
        for key in r.only_left:
            if shown < MARKDOWN_ROWS:
                lines.append(f"- `{key}`: only in `{left}`")
            shown += 1
        for key in r.only_right:
            if shown < MARKDOWN_ROWS:
                lines.append(f"- `{key}`: only in `{right}`")
            shown += 1
        for key, fields in r.changed.items():
            if shown < MARKDOWN_ROWS:
                lines.append(f"- `{key}` changed:")
                for name, (x, y) in fields.items():
                    lines.append(f"  - `{name or '(value)'}`: `{x!r}` → `{y!r}`")
            shown += 1
        if shown > MARKDOWN_ROWS:
            lines.append(f"- … {shown - MARKDOWN_ROWS} more in the JSON report")
        lines.append("")
    return "\n".join(lines)


def write_report(
    results: Sequence[ProjectionDiff], left: str, right: str, out: Path
) -> tuple[Path, Path]:
    """Write ``{left}-vs-{right}.json`` and ``.md`` under ``out``; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{left}-vs-{right}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(report_json(results, left, right), indent=2, default=str))
    md_path.write_text(report_markdown(results, left, right))
    return json_path, md_path
