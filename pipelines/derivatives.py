"""The I/O shell around the renderer: which outputs exist, render the rest, store them.

``plan(job, stores, …)`` looks up which output keys are stored (one LIST of the key prefix per
bucket, which also gives their sizes) and whether the original was quarantined (its refusal
marker, ``refused.json`` under the same prefix); ``produce(job, stores, …)`` then fetches the
original only when something is missing, renders the missing outputs with `pipelines.render`
and stores them. An output already stored is never rendered or written again, so a
redelivered event or a resumed re-render costs two listing requests and no rendering. The
result is the `RecordDerivatives` command to send.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands import messages as m
from pipelines.object_store import ObjectNotFound, ObjectStore, S3ObjectStore
from pipelines.render import (
    DEFAULT_PARAMS,
    DERIVATIVES_PREFIX,
    RENDERER_VERSION,
    Output,
    RenderParams,
    outputs,
    render_missing,
)

MAX_ORIGINAL_BYTES = 4 * 1024 * 1024
RenderFunction = Callable[[bytes, Iterable[Output], RenderParams], dict[Output, bytes]]


class OriginalMissing(LookupError):
    """The original an event names is not in the private bucket (nothing to render from)."""


class OriginalQuarantined(RuntimeError):
    """The original's rendering was refused before (its refusal marker is stored)."""


@dataclass(frozen=True, slots=True)
class RenderJob:
    """One original to render: the icon, its sanitised SVG's key and content hash, and the
    ingestion's render cost estimate (None for originals recorded before estimates)."""

    icon_id: UUID
    content_hash: str
    original_key: str
    correlation_id: str = "media"
    render_cost: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an original is quarantined: a `domain.media.RenderRefusalCode` and a detail."""

    code: str
    detail: str


def refusal_key(content_hash: str, renderer_version: str) -> str:
    """The private key that marks an original as quarantined for a renderer version."""
    return f"{DERIVATIVES_PREFIX}/{content_hash}/{renderer_version}/refused.json"


def store_refusal(store: ObjectStore, key: str, refusal: Refusal) -> None:
    body = json.dumps({"code": refusal.code, "detail": refusal.detail}, sort_keys=True)
    store.put_bytes(key, body.encode(), content_type="application/json")


def read_refusal(store: ObjectStore, key: str) -> Refusal:
    found = json.loads(store.get_bytes(key, max_bytes=64 * 1024))
    return Refusal(str(found["code"]), str(found["detail"]))


@dataclass(frozen=True, slots=True)
class MediaStores:
    """The private bucket (originals, paid derivatives) and the public one (previews)."""

    private: ObjectStore
    public: ObjectStore

    def for_output(self, output: Output) -> ObjectStore:
        return self.public if output.public else self.private


@dataclass(frozen=True, slots=True)
class Produced:
    """What `produce` did: each output's key and byte count, and how many it rendered."""

    job: RenderJob
    sizes: dict[Output, tuple[str, int]]
    rendered: int
    renderer_version: str
    params: RenderParams

    @property
    def skipped(self) -> int:
        return len(self.sizes) - self.rendered

    def command(self) -> m.RecordDerivatives:
        items = tuple(
            m.DerivativeItem(kind=output.kind, size=output.size, key=key, size_bytes=size)
            for output, (key, size) in self.sizes.items()
            if not output.public
        )
        preview = next((key for output, (key, _) in self.sizes.items() if output.public), None)
        return m.RecordDerivatives(
            icon_id=self.job.icon_id,
            source_hash=self.job.content_hash,
            renderer_version=self.renderer_version,
            items=items,
            parameters=tuple(sorted(flat_parameters(self.params).items())),
            preview_key=preview,
        )


def flat_parameters(params: RenderParams) -> dict[str, int | str]:
    """The lineage parameters as the event stores them (scalars only)."""
    flat: dict[str, int | str] = {}
    for name, value in params.lineage().items():
        flat[name] = ",".join(map(str, value)) if isinstance(value, list) else value
    return flat


def stored_size(store: ObjectStore, key: str) -> int | None:
    """The byte count of the object at ``key``, or None when there is none (one HEAD on S3)."""
    if isinstance(store, S3ObjectStore):
        from botocore.exceptions import ClientError

        try:
            head = store.client.head_object(Bucket=store.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return int(head["ContentLength"])
    if not store.exists(key):
        return None
    return len(store.get_bytes(key))


def stored_sizes(store: ObjectStore, keys: Sequence[str], prefix: str) -> dict[str, int]:
    """The byte count of each of ``keys`` (all under ``prefix``) that is stored.

    On S3 one LIST of the prefix answers for every key (one request instead of a HEAD each);
    other stores are asked key by key.
    """
    if isinstance(store, S3ObjectStore):
        listed: dict[str, int] = {}
        token: dict[str, str] = {}
        while True:
            page = store.client.list_objects_v2(Bucket=store.bucket, Prefix=prefix, **token)
            listed.update({item["Key"]: int(item["Size"]) for item in page.get("Contents", [])})
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        return {key: listed[key] for key in keys if key in listed}
    sizes = {key: stored_size(store, key) for key in keys}
    return {key: size for key, size in sizes.items() if size is not None}


def _map(pool: Executor | None, function: Any, items: Iterable[Any]) -> list[Any]:
    return list(pool.map(function, items) if pool is not None else map(function, items))


@dataclass(frozen=True, slots=True)
class Plan:
    """What `plan` found: each output's key, the stored ones with their sizes, the missing
    ones, and whether the original is quarantined (its refusal marker is stored)."""

    job: RenderJob
    keys: dict[Output, str]
    stored: dict[Output, tuple[str, int]]
    missing: tuple[Output, ...]
    refused: bool
    renderer_version: str
    params: RenderParams

    @property
    def refusal_key(self) -> str:
        return refusal_key(self.job.content_hash, self.renderer_version)

    def produced(self, rendered: dict[Output, bytes]) -> Produced:
        """The `Produced` once ``rendered`` (the missing outputs) are stored too."""
        sizes = dict(self.stored)
        sizes.update({output: (self.keys[output], len(rendered[output])) for output in rendered})
        ordered = {output: sizes[output] for output in self.keys}
        return Produced(self.job, ordered, len(rendered), self.renderer_version, self.params)


def plan(
    job: RenderJob,
    stores: MediaStores,
    *,
    params: RenderParams = DEFAULT_PARAMS,
    renderer_version: str = RENDERER_VERSION,
) -> Plan:
    """Which outputs of ``job`` are stored, which are missing, and whether it is quarantined."""
    wanted = outputs(params)
    keys = {output: output.key(job.content_hash, renderer_version) for output in wanted}
    marker = refusal_key(job.content_hash, renderer_version)
    found: dict[str, int] = {}
    for store, group in ((stores.private, False), (stores.public, True)):
        in_store = [keys[o] for o in wanted if o.public is group]
        if not group:
            in_store.append(marker)
        prefix = in_store[0].rsplit("/", 1)[0] + "/"
        found.update(stored_sizes(store, in_store, prefix))
    stored = {o: (keys[o], found[keys[o]]) for o in wanted if keys[o] in found}
    missing = tuple(output for output in wanted if output not in stored)
    return Plan(job, keys, stored, missing, marker in found, renderer_version, params)


def fetch_original(job: RenderJob, stores: MediaStores) -> bytes:
    try:
        return stores.private.get_bytes(job.original_key, max_bytes=MAX_ORIGINAL_BYTES)
    except ObjectNotFound:
        raise OriginalMissing(
            f"icon {job.icon_id}: original {job.original_key!r} is not stored"
        ) from None


def store_rendered(
    planned: Plan, rendered: dict[Output, bytes], stores: MediaStores, pool: Executor | None
) -> Produced:
    """Store the rendered outputs (``pool`` overlaps the requests)."""

    def put(output: Output) -> None:
        stores.for_output(output).put_bytes(
            planned.keys[output], rendered[output], content_type=output.content_type
        )

    _map(pool, put, list(rendered))
    return planned.produced(rendered)


def produce(
    job: RenderJob,
    stores: MediaStores,
    *,
    params: RenderParams = DEFAULT_PARAMS,
    renderer_version: str = RENDERER_VERSION,
    pool: Executor | None = None,
    renderer: RenderFunction = render_missing,
) -> Produced:
    """Make sure every output of ``job`` is stored; ``pool`` overlaps the object-store calls.

    ``renderer`` renders the missing outputs (in process by default). A quarantined original
    raises `OriginalQuarantined` (the media workers refused it; it is not rendered again)."""
    planned = plan(job, stores, params=params, renderer_version=renderer_version)
    if planned.refused:
        refusal = read_refusal(stores.private, planned.refusal_key)
        raise OriginalQuarantined(f"icon {job.icon_id}: {refusal.code}: {refusal.detail}")
    if not planned.missing:
        return planned.produced({})
    svg = fetch_original(job, stores)
    rendered = renderer(svg, planned.missing, params)
    return store_rendered(planned, rendered, stores, pool)
