"""Batch re-render: every selected icon's current original through the renderer, on every core.

Which icons: the event store's current originals (the catalog log's ``Icon.Created``,
``Icon.OriginalRecorded`` and ``Icon.SvgRevised`` events, read with a topic filter), not the
read model: the search index does not hold originals' keys and hashes, and the write side's
history is the authority on which original is current.

Each worker process (``ProcessPoolExecutor``, spawned) renders and uploads with its own S3
client; keys are deterministic, so a stored output is skipped and an interrupted run resumes
where it stopped. The parent records each icon's derivatives (``RecordDerivatives``, which
appends nothing when they are already recorded). A new ``RENDERER_VERSION`` means new keys, so
a version bump re-renders everything it selects.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.utils import get_topic

from commands import messages as m
from commands.applications import ContextApplication
from commands.bus import CommandBus
from commands.log import Progress, pages_of
from commands.results import CommandResult
from domain.errors import DomainError, ErrorCode
from domain.icon import Icon
from pipelines.derivatives import MediaStores, RenderJob, produce
from pipelines.media_worker import service_context
from pipelines.render import DEFAULT_PARAMS, RENDERER_VERSION, RenderParams

PAGE = 5_000
_TOPICS = [get_topic(cls) for cls in (Icon.Created, Icon.OriginalRecorded, Icon.SvgRevised)]


@dataclass(frozen=True)
class Selection:
    """Which icons: one set, one family, or all (every field None)."""

    set_id: UUID | None = None
    family_id: UUID | None = None

    def wants(self, set_id: UUID, family_id: UUID) -> bool:
        if self.set_id is not None:
            return set_id == self.set_id
        if self.family_id is not None:
            return family_id == self.family_id
        return True


def current_originals(app: ContextApplication, selection: Selection) -> list[RenderJob]:
    """The selected icons' current originals, in the order the icons were created."""
    places: dict[UUID, tuple[UUID, UUID]] = {}
    originals: dict[UUID, tuple[str, str]] = {}
    for page in pages_of(app.recorder, page=PAGE, topics=_TOPICS):
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            if isinstance(event, Icon.Created):
                places[event.originator_id] = (event.set_id, event.family_id)
            elif isinstance(event, Icon.OriginalRecorded | Icon.SvgRevised):
                originals[event.originator_id] = (
                    event.original["content_hash"],
                    event.original["key"],
                )
    correlation = f"rerender-{uuid.uuid4().hex[:12]}"
    return [
        RenderJob(icon_id, content_hash, key, correlation)
        for icon_id, (content_hash, key) in originals.items()
        if icon_id in places and selection.wants(*places[icon_id])
    ]


@dataclass
class Summary:
    """What a re-render did: icons rendered (≥ 1 output written), skipped (all stored), failed."""

    selected: int = 0
    rendered: int = 0
    skipped: int = 0
    outputs_written: int = 0
    stale: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.selected / self.seconds if self.seconds else 0.0


# --- the worker processes

_STORES: MediaStores | None = None
_IO: ThreadPoolExecutor | None = None


def _init_worker(make_stores: Callable[[], MediaStores]) -> None:
    global _STORES, _IO  # noqa: PLW0603 - one set of clients per worker process
    _STORES = make_stores()
    _IO = ThreadPoolExecutor(max_workers=8, thread_name_prefix="media-io")


@dataclass(frozen=True)
class _Done:
    job: RenderJob
    command: m.RecordDerivatives | None
    rendered: int
    error: str | None = None


def _render_one(job: RenderJob, params: RenderParams, renderer_version: str) -> _Done:
    assert _STORES is not None, "worker not initialised"
    try:
        produced = produce(job, _STORES, params=params, renderer_version=renderer_version, pool=_IO)
    except Exception as exc:  # reported per icon in the summary; the batch goes on
        return _Done(job, None, 0, f"{type(exc).__name__}: {exc}")
    return _Done(job, produced.command(), produced.rendered)


# --- the parent


def rerender(
    make_stores: Callable[[], MediaStores],
    bus: CommandBus,
    jobs: Iterable[RenderJob],
    *,
    workers: int | None = None,
    params: RenderParams = DEFAULT_PARAMS,
    renderer_version: str = RENDERER_VERSION,
    progress: Progress | None = None,
) -> Summary:
    """Render ``jobs`` on ``workers`` processes (default: every core) and record the results.
    Each worker process builds its own stores with ``make_stores``, which must pickle (a
    module-level function, or a partial of one): the composition root provides it."""
    jobs = list(jobs)
    summary = Summary(selected=len(jobs))
    began = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    recording: list[tuple[_Done, Future[CommandResult]]] = []
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(make_stores,),
    ) as pool:
        for n, done in enumerate(_completed(pool, jobs, params, renderer_version), start=1):
            if done.command is None:
                summary.failed[str(done.job.icon_id)] = done.error or "unknown error"
            else:
                ctx = service_context(done.job.correlation_id)
                recording.append((done, bus.submit(done.command, ctx)))
                summary.outputs_written += done.rendered
            if progress is not None:
                progress("rerender", n, len(jobs))
    for done, future in recording:
        _settle(summary, done, future)
    summary.seconds = time.perf_counter() - began
    return summary


def _completed(
    pool: ProcessPoolExecutor, jobs: list[RenderJob], params: RenderParams, version: str
) -> Iterator[_Done]:
    futures = [pool.submit(_render_one, job, params, version) for job in jobs]
    for future in as_completed(futures):
        yield future.result()


def _settle(summary: Summary, done: _Done, future: Future[CommandResult]) -> None:
    try:
        future.result()
    except DomainError as exc:
        if exc.code == ErrorCode.STALE_DERIVATIVES.value:
            summary.stale += 1
        else:
            summary.failed[str(done.job.icon_id)] = f"{exc.code}: {exc.message}"
        return
    except Exception as exc:  # reported per icon in the summary
        summary.failed[str(done.job.icon_id)] = f"{type(exc).__name__}: {exc}"
        return
    if done.rendered:
        summary.rendered += 1
    else:
        summary.skipped += 1


def describe(summary: Summary) -> list[str]:
    """The summary as lines for the terminal."""
    lines = [
        f"selected {summary.selected} icons in {summary.seconds:.1f} s "
        f"({summary.rate:,.1f} icons/s)",
        f"rendered {summary.rendered} (outputs written: {summary.outputs_written}), "
        f"skipped {summary.skipped} (all outputs stored), stale {summary.stale}, "
        f"failed {len(summary.failed)}",
    ]
    lines += [f"  failed {icon_id}: {reason}" for icon_id, reason in summary.failed.items()]
    return lines
