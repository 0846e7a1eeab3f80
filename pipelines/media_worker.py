"""The media worker: a consumer-runner handler that renders each uploaded or revised original.

For every ``Icon.OriginalRecorded`` / ``Icon.SvgRevised`` of its lane in a batch it makes sure
the full derivative set is stored, then records it with ``RecordDerivatives`` (lineage: source
hash, renderer version, parameters, preview key). All of it is idempotent: stored outputs are
skipped, and recording what is already recorded appends nothing, so a redelivered event
renders, writes and appends nothing.

Rendering: every missing output's render pass of every icon of the batch is handed to the
renderer at once (`pipelines.render_pool.RenderPool` in ``iconmarket media work``), cheapest
icon first by its estimated render cost, and each icon is stored and recorded as soon as its
own passes are done, not when the batch is. **Lanes**: an icon whose estimate is above
``heavy_cost`` belongs to the heavy lane, a consumer group with render processes of its own;
the light lane skips it (and the heavy lane the others), so costly icons never hold up cheap
ones. Originals recorded before estimates existed are the light lane's.

**Quarantine.** A render pass that fails for a reason the same file would meet again (poison,
`stream.failures.classify`: past its CPU deadline, refused by the renderer, a renderer crash)
quarantines the icon once: its other passes are stopped, a refusal marker is stored next to its
outputs' keys and ``RecordRenderRefusal`` appends ``Icon.RenderRefused`` (code and detail, which
the owner sees). The event is then done with: a redelivery finds the marker and renders
nothing, so the icon is never retried for that original and renderer version. A failure of
the machine (transient: a render process killed from outside, a pass starved of CPU, S3 or the
store down) raises `RenderFailed` instead, and the runner retries the batch.

Outcomes that retrying cannot change are not failures: derivatives of an original that has
since been revised (``stale_derivatives``), and an original that is not in the bucket (one
error line per batch lists the icon ids). Everything else raises `RenderFailed` naming the
icon, so the runner retries it and finally dead-letters it (the dead letter's key is the icon
id too).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from commands import messages as m
from commands.bus import CommandBus
from commands.results import CommandContext, CommandResult
from domain.errors import DomainError, ErrorCode
from domain.media import RenderRefusalCode
from pipelines.derivatives import (
    MediaStores,
    OriginalMissing,
    Plan,
    Refusal,
    RenderFunction,
    RenderJob,
    fetch_original,
    plan,
    read_refusal,
    refusal_key,
    store_refusal,
    store_rendered,
)
from pipelines.render import (
    DEFAULT_PARAMS,
    RENDERER_VERSION,
    Output,
    RenderParams,
    passes,
    render_missing,
)
from pipelines.render_pool import RenderCrashed, Rendered, RenderTimedOut
from stream.consumer import Delivery
from stream.envelope import Envelope
from stream.failures import Failure, classify
from stream.metrics import counter

log = logging.getLogger("iconmarket.media")

MEDIA_EVENTS = frozenset({"Icon.OriginalRecorded", "Icon.SvgRevised"})
SERVICE_ACTOR = "service:media"
GROUP_ID = "media-derivatives"
HEAVY_GROUP_ID = "media-derivatives-heavy"
DEFAULT_HEAVY_COST = 400_000


OUTPUTS = counter(
    "iconmarket_media_outputs",
    "Derivative outputs handled by the media workers: rendered (written) or skipped (stored).",
    ["outcome"],
)
ICONS = counter(
    "iconmarket_media_icons",
    "Originals handled by the media workers, by outcome (recorded, quarantined, stale, missing).",
    ["outcome"],
)


class RenderFailed(RuntimeError):
    """Rendering or storing an icon's derivatives failed; the message names the icon."""


class Lane(enum.Enum):
    """Which icons a worker renders, by estimated render cost."""

    ALL = "all"
    LIGHT = "light"
    HEAVY = "heavy"


class Renderer(Protocol):
    """Renders one pass (`pipelines.render.passes`); `RenderPool` is one."""

    def submit(
        self,
        svg: bytes,
        outputs: Sequence[Output],
        params: RenderParams = ...,
        *,
        priority: float = ...,
        label: str = ...,
    ) -> Future[Rendered]: ...

    def cancel(self, future: Future[Rendered]) -> None: ...


@dataclass
class InlineRenderer:
    """Renders each pass at once in the calling thread (unit tests, tools): no deadline."""

    render: RenderFunction = render_missing

    def submit(
        self,
        svg: bytes,
        outputs: Sequence[Output],
        params: RenderParams = DEFAULT_PARAMS,
        *,
        priority: float = 0.0,
        label: str = "",
    ) -> Future[Rendered]:
        future: Future[Rendered] = Future()
        try:
            future.set_result(self.render(svg, tuple(outputs), params))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def cancel(self, future: Future[Rendered]) -> None:
        """Nothing to stop: every pass is done when `submit` returns."""


def job_of(event: Envelope) -> RenderJob | None:
    """The render job an event asks for, or None for every other event."""
    if event.type not in MEDIA_EVENTS:
        return None
    original = event.data["original"]
    cost = original.get("render_cost")
    return RenderJob(
        icon_id=UUID(event.aggregate_id),
        content_hash=str(original["content_hash"]),
        original_key=str(original["key"]),
        correlation_id=event.correlation_id or "media",
        render_cost=None if cost is None else int(cost),
    )


def service_context(correlation_id: str) -> CommandContext:
    return CommandContext(
        actor=SERVICE_ACTOR, roles=frozenset({"service"}), correlation_id=correlation_id
    )


def refusal_of(error: BaseException) -> Refusal:
    """The refusal a poison render failure gives its icon."""
    if isinstance(error, RenderTimedOut):
        code = RenderRefusalCode.RENDER_TIMEOUT
    elif isinstance(error, RenderCrashed):
        code = RenderRefusalCode.RENDER_CRASHED
    else:
        code = RenderRefusalCode.RENDER_FAILED
    return Refusal(code.value, str(error) or type(error).__name__)


@dataclass(eq=False)
class _Run:
    """One icon of a batch on its way through plan → render → store → record."""

    job: RenderJob
    planned: Plan | None = None
    passes: list[Future[Rendered]] = field(default_factory=list)
    rendered: Rendered = field(default_factory=dict)
    missing: bool = False
    stopped: bool = False
    error: BaseException | None = None
    finish: Future[tuple[str, CommandResult]] | None = None


@dataclass
class MediaWorker:
    """The handler: render what is missing, then record each icon's derivatives (or its
    quarantine). ``pool`` runs the object-store calls; ``renderer`` the render passes."""

    bus: CommandBus
    stores: MediaStores
    params: RenderParams = DEFAULT_PARAMS
    renderer_version: str = RENDERER_VERSION
    pool: Executor | None = None
    renderer: Renderer = field(default_factory=InlineRenderer)
    lane: Lane = Lane.ALL
    heavy_cost: int = DEFAULT_HEAVY_COST
    _finishers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="media-finish"),
        repr=False,
    )

    def takes(self, job: RenderJob) -> bool:
        """Whether ``job`` is this worker's lane's."""
        if self.lane is Lane.ALL:
            return True
        heavy = job.render_cost is not None and job.render_cost > self.heavy_cost
        return heavy is (self.lane is Lane.HEAVY)

    def __call__(self, deliveries: Sequence[Delivery], /) -> None:
        jobs = [job for job in (job_of(d.event) for d in deliveries) if job is not None]
        mine = sorted((job for job in jobs if self.takes(job)), key=_cost)
        if not mine:
            return
        runs = self._map(self._prepare, mine)
        self._render(runs)
        missing = [str(run.job.icon_id) for run in runs if run.missing]
        if missing:
            # One line per batch: a store full of originals that were never uploaded (fixtures,
            # deleted objects) must not flood the logs.
            log.error(
                "originals missing from the bucket; nothing to render",
                extra={"count": len(missing), "icon_ids": missing[:20]},
            )
        failures = [error for error in (self._settle(run) for run in runs) if error is not None]
        if failures:
            # A dependency failure first: the runner then waits it out instead of counting
            # the batch's attempts towards dead-lettering.
            failures.sort(key=lambda failed: classify(failed) is not Failure.TRANSIENT)
            raise failures[0]

    # --- plan, fetch and submit (object-store calls overlap in ``pool``)

    def _map(self, function: Callable[[RenderJob], _Run], jobs: list[RenderJob]) -> list[_Run]:
        if self.pool is None:
            return [function(job) for job in jobs]
        return list(self.pool.map(function, jobs))

    def _prepare(self, job: RenderJob) -> _Run:
        run = _Run(job)
        try:
            planned = plan(
                job, self.stores, params=self.params, renderer_version=self.renderer_version
            )
            run.planned = planned
            if planned.refused:
                refusal = read_refusal(self.stores.private, planned.refusal_key)
                run.finish = self._finishers.submit(self._record_refusal, job, refusal)
            elif not planned.missing:
                run.finish = self._finishers.submit(self._record, run)
            else:
                svg = fetch_original(job, self.stores)
                run.passes = [
                    self.renderer.submit(
                        svg,
                        group,
                        self.params,
                        priority=_cost(job),
                        label=f"icon {job.icon_id}",
                    )
                    for group in passes(planned.missing)
                ]
        except OriginalMissing:
            ICONS.labels("missing").inc()
            run.missing = True
        except Exception as exc:
            run.error = exc
        return run

    # --- wait for the passes; record each icon as soon as its own are done

    def _render(self, runs: list[_Run]) -> None:
        owner = {future: run for run in runs for future in run.passes}
        pending = set(owner)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for run in sorted({owner[future] for future in done}, key=lambda r: _cost(r.job)):
                if run.stopped:
                    continue
                failed = next(
                    (f for f in run.passes if f.done() and not f.cancelled() and f.exception()),
                    None,
                )
                if failed is not None:
                    run.stopped = True
                    pending -= self._stop(run, failed)
                    self._failed(run, failed.exception() or RuntimeError("no error"))
                elif all(future.done() for future in run.passes):
                    run.stopped = True
                    for future in run.passes:
                        run.rendered.update(future.result())
                    run.finish = self._finishers.submit(self._record, run)

    def _stop(self, run: _Run, failed: Future[Rendered]) -> set[Future[Rendered]]:
        """Stops ``run``'s other passes; returns them."""
        others = {future for future in run.passes if future is not failed}
        for future in others:
            if not future.done():
                self.renderer.cancel(future)
        return others

    def _failed(self, run: _Run, error: BaseException) -> None:
        if classify(error) is Failure.POISON:
            refusal = refusal_of(error)
            log.warning(
                "render refused; icon quarantined",
                extra=_extra(run.job, code=refusal.code, detail=refusal.detail),
            )
            run.finish = self._finishers.submit(self._quarantine, run.job, refusal)
        else:
            run.error = error

    # --- store and record (finisher threads)

    def _record(self, run: _Run) -> tuple[str, CommandResult]:
        assert run.planned is not None
        produced = store_rendered(run.planned, run.rendered, self.stores, self.pool)
        OUTPUTS.labels("rendered").inc(produced.rendered)
        OUTPUTS.labels("skipped").inc(produced.skipped)
        result = self.bus.submit(produced.command(), service_context(run.job.correlation_id))
        return "recorded", result.result()

    def _quarantine(self, job: RenderJob, refusal: Refusal) -> tuple[str, CommandResult]:
        """Marks the original as refused (so a redelivery renders nothing), then records it."""
        marker = refusal_key(job.content_hash, self.renderer_version)
        store_refusal(self.stores.private, marker, refusal)
        return self._record_refusal(job, refusal)

    def _record_refusal(self, job: RenderJob, refusal: Refusal) -> tuple[str, CommandResult]:
        command = m.RecordRenderRefusal(
            icon_id=job.icon_id,
            source_hash=job.content_hash,
            renderer_version=self.renderer_version,
            code=refusal.code,
            detail=refusal.detail,
        )
        result = self.bus.submit(command, service_context(job.correlation_id))
        return "quarantined", result.result()

    def _settle(self, run: _Run) -> RenderFailed | None:
        job = run.job
        if run.error is not None:
            return _failure(job, run.error)
        if run.finish is None:
            return None
        try:
            outcome, _result = run.finish.result()
        except DomainError as exc:
            if exc.code != ErrorCode.STALE_DERIVATIVES.value:
                return _failure(job, exc, f"{exc.code}: {exc.message}")
            ICONS.labels("stale").inc()
            log.info("original revised since; result not recorded", extra=_extra(job))
            return None
        except Exception as exc:
            return _failure(job, exc)
        ICONS.labels(outcome).inc()
        return None


def _failure(job: RenderJob, error: BaseException, what: str | None = None) -> RenderFailed:
    failed = RenderFailed(f"icon {job.icon_id}: {what or f'{type(error).__name__}: {error}'}")
    failed.__cause__ = error
    return failed


def _cost(job: RenderJob) -> float:
    """The scheduling priority: cheapest first; unestimated originals after estimated ones."""
    return float(job.render_cost) if job.render_cost is not None else float(DEFAULT_HEAVY_COST)


def _extra(job: RenderJob, **more: Any) -> dict[str, Any]:
    return {"icon_id": str(job.icon_id), "content_hash": job.content_hash, **more}
