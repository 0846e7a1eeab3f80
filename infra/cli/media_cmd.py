"""`iconmarket media work | rerender`: the media workers and the batch re-render."""

from __future__ import annotations

import argparse
import functools
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from infra.bootstrap import Container, bootstrap, media_stores
from infra.cli.periodic import every
from infra.logs import configure
from infra.settings import Settings
from pipelines.derivatives import MediaStores
from pipelines.import_worker import GROUP_ID as IMPORTS_GROUP_ID
from pipelines.import_worker import ImportWorker
from pipelines.media_worker import GROUP_ID, HEAVY_GROUP_ID, Lane, MediaWorker
from pipelines.previews import GROUP_ID as PREVIEWS_GROUP_ID
from pipelines.previews import PreviewComposer
from pipelines.render_pool import RenderPool
from pipelines.rerender import Selection, current_originals, describe, rerender
from stream.consumer import ConsumerRunner, serve
from stream.topics import topic_for

WORKER_BATCH = 50
log = logging.getLogger("iconmarket.media")


def register(commands: Any) -> None:
    media = commands.add_parser(
        "media",
        help="media workers (derivatives, previews) and the batch re-render",
        description="Render icons' derivatives (PNG 1x-4x, WebP, PDF, a watermarked preview) "
        "and compose set and family previews.",
    )
    actions = media.add_subparsers(dest="action", required=True, metavar="ACTION")
    work = actions.add_parser(
        "work",
        help="run the media workers until SIGTERM or Ctrl-C",
        description="Consume the catalog topic: render the derivatives of every uploaded or "
        f"revised original in render processes with a CPU deadline per output (consumer group "
        f"{GROUP_ID!r}; icons estimated costly in {HEAVY_GROUP_ID!r}, with render processes of "
        "their own) and compose set and family previews once their icons' derivatives exist "
        f"({PREVIEWS_GROUP_ID!r}). An icon whose rendering fails or passes its deadline is "
        "quarantined once (Icon.RenderRefused); a dependency failure is retried.",
    )
    work.set_defaults(handler=_work)
    again = actions.add_parser(
        "rerender",
        help="re-render icons on every core (resumable: stored outputs are skipped)",
        description="Render the current original of the selected icons with the current "
        "renderer version on N processes, record the derivatives, and print a summary "
        "(rendered, skipped, failed with reasons). Icons come from the event store's current "
        "originals.",
    )
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--set", dest="set_id", metavar="ID", help="the icons of one set")
    which.add_argument("--family", dest="family_id", metavar="ID", help="the icons of a family")
    which.add_argument("--all", action="store_true", help="every icon with an original")
    again.add_argument(
        "--workers", type=int, default=None, metavar="N", help="processes (default: every core)"
    )
    again.set_defaults(handler=_rerender)
    imports = actions.add_parser(
        "imports",
        help="run the zip import worker until SIGTERM or Ctrl-C",
        description="Consume the catalog topic (consumer group "
        f"{IMPORTS_GROUP_ID!r}): process every requested zip batch import (IconImport."
        "ImportRequested): read its staged zip, create its icons and record the report "
        "(IconImport.ImportCompleted), or the zip's refusal (IconImport.ImportRefused), then "
        "delete the staged zip. Idempotent: a redelivered request creates nothing twice; a "
        "dependency failure is waited out.",
    )
    imports.set_defaults(handler=_imports)
    staged = actions.add_parser(
        "sweep-staged",
        help="delete presigned uploads and import zips staged but never processed",
        description="Delete the staged objects (incoming/ in the private bucket) of presigned "
        "uploads older than their URL's lifetime (ICONMARKET_UPLOAD_URL_TTL_S) plus a minute: "
        "their URL has expired and nobody completed them; and the staged zips of imports "
        "(imports/) older than ICONMARKET_IMPORT_STAGED_TTL_S (the worker deletes a processed "
        "import's own). With --loop, repeat every ICONMARKET_UPLOAD_URL_TTL_S until SIGTERM or "
        "Ctrl-C (a process of `iconmarket run`).",
    )
    staged.add_argument("--loop", action="store_true", help="keep sweeping periodically")
    staged.set_defaults(handler=_sweep_staged)


HEAVY_NICENESS = 10


def render_pools(settings: Settings) -> tuple[RenderPool, RenderPool]:
    """The light lane's render processes and the heavy lane's (at a lower CPU priority)."""
    light = RenderPool(
        settings.media_render_processes, settings.media_render_deadline_s, name="render-light"
    )
    heavy = RenderPool(
        settings.media_heavy_render_processes,
        settings.media_render_deadline_s,
        niceness=HEAVY_NICENESS,
        name="render-heavy",
    )
    return light, heavy


def runners(
    container: Container,
    pools: tuple[RenderPool, RenderPool],
    *,
    topic: str | None = None,
    group_prefix: str = "",
    previews: bool = True,
) -> list[ConsumerRunner]:
    """The derivative workers of the light and the heavy lane and the preview composer, each
    its own consumer group (``topic`` and ``group_prefix``: another topic and groups, for
    benchmarks)."""
    settings = container.settings
    stores = MediaStores(container.private_store, container.public_store)
    io = ThreadPoolExecutor(8, thread_name_prefix="media-io")
    topic = topic or topic_for("catalog")
    lanes = (
        (Lane.LIGHT, group_prefix + GROUP_ID, pools[0]),
        (Lane.HEAVY, group_prefix + HEAVY_GROUP_ID, pools[1]),
    )
    workers = [
        ConsumerRunner(
            settings,
            group_id=group_id,
            topics=[topic],
            handler=MediaWorker(
                container.bus,
                stores,
                pool=io,
                renderer=pool,
                lane=lane,
                heavy_cost=settings.media_heavy_render_cost,
            ),
            batch_size=WORKER_BATCH,
        )
        for lane, group_id, pool in lanes
    ]
    if not previews:
        return workers
    composer = PreviewComposer(container.bus, container.redis, container.public_store)
    return [
        *workers,
        ConsumerRunner(
            settings,
            group_id=group_prefix + PREVIEWS_GROUP_ID,
            topics=[topic],
            handler=composer,
            batch_size=500,
        ),
    ]


def _work(_args: argparse.Namespace) -> int:
    container = bootstrap()
    configure(container.settings.log_level)
    pools = render_pools(container.settings)
    try:
        serve(runners(container, pools))
    finally:
        for pool in pools:
            pool.close()
        container.close()
    return 0


IMPORT_BATCH = 1
# One import per poll; a 500-entry import may take minutes on a loaded machine.
IMPORT_MAX_POLL_INTERVAL_S = 900.0


def import_runner(
    container: Container, *, topic: str | None = None, group_id: str = IMPORTS_GROUP_ID
) -> ConsumerRunner:
    """The zip import worker (``topic`` and ``group_id``: another topic and group, for tests)."""
    return ConsumerRunner(
        container.settings,
        group_id=group_id,
        topics=[topic or topic_for("catalog")],
        handler=ImportWorker(container.zip_importer),
        batch_size=IMPORT_BATCH,
        max_poll_interval_s=IMPORT_MAX_POLL_INTERVAL_S,
    )


def _imports(_args: argparse.Namespace) -> int:
    container = bootstrap()
    configure(container.settings.log_level)
    try:
        serve([import_runner(container)])
    finally:
        container.close()
    return 0


def _sweep_staged(args: argparse.Namespace) -> int:
    container = bootstrap()
    configure(container.settings.log_level)
    ingestion = container.svg_ingestion
    importer = container.zip_importer

    def sweep() -> tuple[int, int]:
        return ingestion.sweep_staged(), importer.sweep_staged()

    def one_pass() -> None:
        uploads, zips = sweep()
        if uploads or zips:
            log.info("abandoned staged objects deleted", extra={"uploads": uploads, "zips": zips})

    try:
        if args.loop:
            every(container.settings.upload_url_ttl_s, one_pass, "staged upload sweep", log)
        else:
            uploads, zips = sweep()
            Console(stderr=True).print(
                f"sweep-staged: {uploads} staged uploads and {zips} staged import zips deleted"
            )
    finally:
        container.close()
    return 0


def _uuid(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise SystemExit(f"not an id: {value!r}") from None


def _rerender(args: argparse.Namespace) -> int:
    selection = Selection(set_id=_uuid(args.set_id), family_id=_uuid(args.family_id))
    if args.workers is not None and args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    container = bootstrap()
    configure(container.settings.log_level)
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} icons/s"),
        TimeRemainingColumn(),
    )
    try:
        jobs = current_originals(container.applications.catalog, selection)
        began = time.perf_counter()
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("rerender", total=len(jobs), rate="-")

            def progress(_label: str, done: int, total: int) -> None:
                rate = done / max(time.perf_counter() - began, 1e-9)
                bar.update(task, completed=done, total=total, rate=f"{rate:,.1f}")

            summary = rerender(
                functools.partial(media_stores, container.settings),
                container.bus,
                jobs,
                workers=args.workers,
                progress=progress,
            )
        for line in describe(summary):
            print(line)
    finally:
        container.close()
    return 1 if summary.failed else 0
