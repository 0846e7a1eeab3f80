"""The media worker: a consumer-runner handler that renders each uploaded or revised original.

For every ``Icon.OriginalRecorded`` / ``Icon.SvgRevised`` in a batch it makes sure the full
derivative set is stored (`pipelines.derivatives.produce`), then records it with
``RecordDerivatives`` (lineage: source hash, renderer version, parameters, preview key). All of
it is idempotent: stored outputs are skipped, and recording what is already recorded appends
nothing, so a redelivered event renders, writes and appends nothing.

Outcomes that retrying cannot change are not failures: derivatives of an original that has
since been revised (``stale_derivatives``), and an original that is not in the bucket (one
error line per batch lists the icon ids). Everything else raises `RenderFailed` naming the
icon, so the runner retries it and finally dead-letters it (the dead letter's key is the icon
id too).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands.bus import CommandBus
from commands.results import CommandContext, CommandResult
from domain.errors import DomainError, ErrorCode
from pipelines.derivatives import (
    MediaStores,
    OriginalMissing,
    Produced,
    RenderJob,
    produce,
)
from pipelines.render import DEFAULT_PARAMS, RENDERER_VERSION, RenderParams, render_missing
from pipelines.render_timeout import RenderFunction
from stream.consumer import Delivery
from stream.envelope import Envelope
from stream.metrics import counter

log = logging.getLogger("iconmarket.media")

MEDIA_EVENTS = frozenset({"Icon.OriginalRecorded", "Icon.SvgRevised"})
SERVICE_ACTOR = "service:media"
GROUP_ID = "media-derivatives"


OUTPUTS = counter(
    "iconmarket_media_outputs",
    "Derivative outputs handled by the media workers: rendered (written) or skipped (stored).",
    ["outcome"],
)
ICONS = counter(
    "iconmarket_media_icons",
    "Originals handled by the media workers, by outcome (recorded, stale, missing).",
    ["outcome"],
)


class RenderFailed(RuntimeError):
    """Rendering or storing an icon's derivatives failed; the message names the icon."""


def job_of(event: Envelope) -> RenderJob | None:
    """The render job an event asks for, or None for every other event."""
    if event.type not in MEDIA_EVENTS:
        return None
    original = event.data["original"]
    return RenderJob(
        icon_id=UUID(event.aggregate_id),
        content_hash=str(original["content_hash"]),
        original_key=str(original["key"]),
        correlation_id=event.correlation_id or "media",
    )


def service_context(correlation_id: str) -> CommandContext:
    return CommandContext(
        actor=SERVICE_ACTOR, roles=frozenset({"service"}), correlation_id=correlation_id
    )


@dataclass
class MediaWorker:
    """The handler: render what is missing, then record each icon's derivatives."""

    bus: CommandBus
    stores: MediaStores
    params: RenderParams = DEFAULT_PARAMS
    renderer_version: str = RENDERER_VERSION
    pool: Executor | None = None
    renderer: RenderFunction = render_missing

    def __call__(self, deliveries: Sequence[Delivery], /) -> None:
        jobs = [job for job in (job_of(d.event) for d in deliveries) if job is not None]
        pending: list[tuple[RenderJob, Future[CommandResult]]] = []
        missing: list[str] = []
        for job in jobs:
            produced = self._produce(job, missing)
            if produced is not None:
                future = self.bus.submit(produced.command(), service_context(job.correlation_id))
                pending.append((job, future))
        if missing:
            # One line per batch: a store full of originals that were never uploaded (fixtures,
            # deleted objects) must not flood the logs.
            log.error(
                "originals missing from the bucket; nothing to render",
                extra={"count": len(missing), "icon_ids": missing[:20]},
            )
        for job, future in pending:
            self._settle(job, future)

    def _produce(self, job: RenderJob, missing: list[str]) -> Produced | None:
        try:
            produced = produce(
                job,
                self.stores,
                params=self.params,
                renderer_version=self.renderer_version,
                pool=self.pool,
                renderer=self.renderer,
            )
        except OriginalMissing:
            ICONS.labels("missing").inc()
            missing.append(str(job.icon_id))
            return None
        except Exception as exc:
            raise RenderFailed(f"icon {job.icon_id}: {type(exc).__name__}: {exc}") from exc
        OUTPUTS.labels("rendered").inc(produced.rendered)
        OUTPUTS.labels("skipped").inc(produced.skipped)
        return produced

    def _settle(self, job: RenderJob, future: Future[CommandResult]) -> None:
        try:
            future.result()
        except DomainError as exc:
            if exc.code != ErrorCode.STALE_DERIVATIVES.value:
                raise RenderFailed(f"icon {job.icon_id}: {exc.code}: {exc.message}") from exc
            ICONS.labels("stale").inc()
            log.info("original revised since; derivatives not recorded", extra=_extra(job))
            return
        except Exception as exc:
            raise RenderFailed(f"icon {job.icon_id}: {type(exc).__name__}: {exc}") from exc
        ICONS.labels("recorded").inc()


def _extra(job: RenderJob, **more: Any) -> dict[str, Any]:
    return {"icon_id": str(job.icon_id), "content_hash": job.content_hash, **more}
