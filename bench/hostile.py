"""Hostile uploads: an honest icon's upload-to-publishable time alone and behind a queue of
hostile uploads, the ratio measured in the same run (goal: <= 1.5).

The real path, on an event store and a topic of the benchmark's own (so no other relay or media
worker on the stack sees these icons): the upload in this process (`SvgIngestion.upload`:
sanitise, estimate, store, ``RecordOriginal``, what the API runs) → the relay → Kafka → the
media workers of both lanes with their render processes (`infra.cli.media_cmd.runners`, as
``iconmarket media work`` runs them; relay and workers in a process of their own, as ``iconmarket
run`` runs them apart from the API) → ``RecordDerivatives``. *Publishable* is the moment
``Icon.DerivativesRecorded`` is in the store (the icon may then be published), watched every
5 ms. Each round uploads a new honest icon (``tests/fixtures/honest/shadow_card.svg`` made
unique): alone, or right after ``ICONMARKET_BENCH_HOSTILE`` (default 8) hostile uploads sent
concurrently, of one kind per case, and ends once the media workers are done with all of them
(so every round starts from an idle pipeline):

- *refused*: the costly fixtures (heavy path x ``<use>``, a chain of wide blurs, masks on a
  4096-unit canvas), refused at upload as ``svg_too_costly`` (the production path);
- *near budget*: accepted just under the budget (about 1.6 M units; 2-2.4 s of CPU each), so
  rendered, by the heavy lane;
- *slipped*: originals the estimate got wrong, as if the model had missed what makes them slow:
  the heavy fixture recorded directly with an honest-looking estimate (30,000 units), so the
  light lane renders them, until their CPU deadline quarantines them.

Rounds alternate between the honest icon alone and each case, so all see the same machine.
Also: the estimate against the measured CPU time of a full derivative set for a few drawings.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from bench.stats import percentile
from commands import messages as m
from domain.icon import Icon
from infra.audit.scratch import scratch_database
from infra.bootstrap import Container, bootstrap
from infra.cli.media_cmd import render_pools, runners
from infra.settings import Settings
from pipelines.errors import MediaRefused
from pipelines.media_worker import GROUP_ID, HEAVY_GROUP_ID
from pipelines.render import outputs, render_missing
from pipelines.svg_policy import SvgLimits, sanitise_svg
from stream.relay import Relay
from tests.support import ctx, scratch_topic

ROUNDS = int(os.environ.get("ICONMARKET_BENCH_HOSTILE_ROUNDS", "6"))
HOSTILE = int(os.environ.get("ICONMARKET_BENCH_HOSTILE", "8"))
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
COSTLY = ("heavy_path_use.svg", "filter_chain.svg", "mask_canvas_bomb.svg")
WAIT_S = 300.0
SLIPPED_ESTIMATE = 30_000
UNBOUNDED = SvgLimits(max_render_cost=10**15)


def _unique(svg: bytes) -> bytes:
    """``svg`` with a ``<desc>`` of its own (kept by the policy: a new content hash)."""
    return svg.replace(b">", f"><desc>{uuid.uuid4().hex}</desc>".encode(), 1)


def honest_svg() -> bytes:
    return _unique((FIXTURES / "honest" / "shadow_card.svg").read_bytes())


def near_budget_svg(seed: int) -> bytes:
    """100 self-crossing curves drawn 8 x 8 times: about 1.6 M units, under the 2 M budget."""
    rng = random.Random(seed)

    def n() -> str:
        return f"{rng.uniform(0, 24):.1f}"

    def uses(target: str) -> str:
        turns = range(0, 360, 45)
        return "".join(f'<use href="#{target}" transform="rotate({t} 12 12)"/>' for t in turns)

    d = "M12 12" + "".join(f"C{n()} {n()} {n()} {n()} {n()} {n()}" for _ in range(100))
    return _unique(
        (
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24">'
            f'<defs><path id="p" d="{d}" fill="none" stroke="#111" stroke-width="0.05"/>'
            f'<g id="a">{uses("p")}</g></defs>{uses("a")}</svg>'
        ).encode()
    )


def _serve_pipeline(settings: Settings, topic: str, ready: Any, stop: Any) -> None:
    """The relay and both media lanes on ``topic``, in a process of their own (as ``iconmarket
    run`` runs them apart from the API), until ``stop`` is set."""
    container = bootstrap(settings)
    halt = threading.Event()
    relay = Relay(container.applications.catalog, settings, topic=topic, log_name=topic)
    pools = render_pools(settings)
    workers = runners(container, pools, topic=topic, group_prefix=f"{topic}-", previews=False)
    threads = [threading.Thread(target=relay.run, args=(halt,), daemon=True)]
    threads += [threading.Thread(target=worker.run, daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    ready.set()
    try:
        stop.wait()
    finally:
        halt.set()
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=60)
        for pool in pools:
            pool.close()
        container.close()


@contextmanager
def _pipeline(base: Container) -> Iterator[Container]:
    """A container on a scratch event store whose relay and media lanes run in a process of
    their own on a scratch topic."""
    with scratch_database(base.settings, prefix="iconmarket_bench_hostile") as settings:
        container = bootstrap(settings)
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Event(), context.Event()
        try:
            with scratch_topic(base, "bench.hostile", 3) as topic:
                # Not a daemon: it starts render processes of its own.
                process = context.Process(
                    target=_serve_pipeline, args=(settings, topic, ready, stop)
                )
                process.start()
                try:
                    if not ready.wait(120):
                        raise RuntimeError("the media pipeline did not start")
                    yield container
                finally:
                    stop.set()
                    process.join(timeout=120)
                    if process.is_alive():
                        process.kill()
                    _drop_groups(base, topic)
        finally:
            container.close()


def _drop_groups(base: Container, topic: str) -> None:
    """The consumer groups of the benchmark's lanes (their topic is deleted with them)."""
    admin = base.kafka_admin()
    try:
        # A group that never joined has nothing to delete.
        with contextlib.suppress(Exception):
            admin.delete_groups([f"{topic}-{GROUP_ID}", f"{topic}-{HEAVY_GROUP_ID}"])
    finally:
        admin.close()


class Shelf:
    """A set to create icons in, and a watch on the store for their derivatives."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.owner = ctx(f"bench-hostile-{uuid.uuid4().hex[:6]}", "contributor")
        bus = container.bus
        family_id = bus.execute(m.CreateFamily(name="Bench Hostile"), self.owner).aggregate_id
        self.set_id = bus.execute(
            m.CreateIconSet(family_id=family_id, name="Bench Hostile", style="line"), self.owner
        ).aggregate_id

    def new_icon(self) -> UUID:
        price = m.Money(amount_minor=100, currency="USD")
        create = m.CreateIcon(set_id=self.set_id, name="bench hostile", price=price)
        return self.container.bus.execute(create, self.owner).aggregate_id

    def upload(self, icon_id: UUID, svg: bytes) -> bool:
        """Upload through the ingestion path; False when the policy refused it."""
        try:
            self.container.svg_ingestion.upload(icon_id, svg, self.owner)
        except MediaRefused:
            return False
        return True

    def record_slipped(self, icon_id: UUID, svg: bytes) -> None:
        """Store and record ``svg`` as if the estimate had found it cheap."""
        clean = sanitise_svg(svg, UNBOUNDED)
        self.container.svg_ingestion.store_original(clean)
        original = m.SvgOriginal(
            key=clean.key,
            content_hash=clean.content_hash,
            size_bytes=clean.size_bytes,
            width=clean.width,
            height=clean.height,
            render_cost=SLIPPED_ESTIMATE,
        )
        self.container.bus.execute(m.RecordOriginal(icon_id=icon_id, original=original), self.owner)

    def icon(self, icon_id: UUID) -> Icon:
        found: object = self.container.applications.catalog.repository.get(icon_id)
        assert isinstance(found, Icon)
        return found

    def settled(self, icon_id: UUID) -> bool:
        """Whether the media workers are done with the icon (rendered, or quarantined)."""
        icon = self.icon(icon_id)
        return icon.original is None or icon.is_publishable or icon.render_refusal is not None

    def wait_settled(self, icon_ids: list[UUID]) -> None:
        deadline = time.monotonic() + 10 * WAIT_S
        waiting = list(icon_ids)
        while waiting and time.monotonic() < deadline:
            waiting = [icon_id for icon_id in waiting if not self.settled(icon_id)]
            time.sleep(0.1)
        if waiting:
            raise AssertionError(f"{len(waiting)} hostile icons not settled")

    def wait_publishable(self, icon_id: UUID) -> float:
        """Block until the icon has derivatives of its current original; the monotonic time."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            icon = self.icon(icon_id)
            if icon.is_publishable:
                return time.monotonic()
            if icon.render_refusal is not None:
                raise AssertionError(f"the honest icon was refused: {icon.render_refusal}")
            time.sleep(0.005)
        raise AssertionError(f"icon {icon_id} not publishable after {WAIT_S} s")


Hostile = Callable[[Shelf, ThreadPoolExecutor, list[UUID]], list[Any]]


def _refused(shelf: Shelf, senders: ThreadPoolExecutor, icons: list[UUID]) -> list[Any]:
    files = [(FIXTURES / "malicious" / name).read_bytes() for name in COSTLY]
    return [
        senders.submit(shelf.upload, icon_id, _unique(files[n % len(files)]))
        for n, icon_id in enumerate(icons)
    ]


def _near_budget(shelf: Shelf, senders: ThreadPoolExecutor, icons: list[UUID]) -> list[Any]:
    return [
        senders.submit(shelf.upload, icon_id, near_budget_svg(n)) for n, icon_id in enumerate(icons)
    ]


def _slipped(shelf: Shelf, senders: ThreadPoolExecutor, icons: list[UUID]) -> list[Any]:
    heavy = (FIXTURES / "malicious" / "heavy_path_use.svg").read_bytes()
    return [senders.submit(shelf.record_slipped, i, _unique(heavy)) for i in icons]


CASES: dict[str, Hostile] = {
    f"behind {HOSTILE} uploads refused as svg_too_costly": _refused,
    f"behind {HOSTILE} near-budget uploads (heavy lane)": _near_budget,
    f"behind {HOSTILE} originals that slipped past the estimate (light lane)": _slipped,
}


def _round(shelf: Shelf, hostile: Hostile | None) -> dict[str, float]:
    """One honest upload timed, alone or right behind a queue of hostile ones; returns once the
    media workers are done with all of them, so the next round starts from an idle pipeline."""
    honest_id = shelf.new_icon()
    hostile_ids = [shelf.new_icon() for _ in range(HOSTILE)] if hostile is not None else []
    svg = honest_svg()
    with ThreadPoolExecutor(HOSTILE, thread_name_prefix="hostile") as senders:
        ahead = hostile(shelf, senders, hostile_ids) if hostile is not None else []
        if ahead:
            time.sleep(0.05)  # the hostile uploads are under way: a queue ahead of the honest one
        began = time.monotonic()
        assert shelf.upload(honest_id, svg)
        uploaded = time.monotonic()
        publishable = shelf.wait_publishable(honest_id)
        accepted = sum(1 for f in ahead if f.result() is not False)
    shelf.wait_settled(hostile_ids)
    return {
        "total_s": publishable - began,
        "upload_s": uploaded - began,
        "after_upload_s": publishable - uploaded,
        "hostile_accepted": accepted,
    }


def _summary(samples: list[dict[str, float]], baseline: dict[str, Any] | None) -> dict[str, Any]:
    totals = [s["total_s"] * 1000 for s in samples]
    summary: dict[str, Any] = {
        "n": len(samples),
        "median_ms": round(statistics.median(totals), 1),
        "p90_ms": round(percentile(totals, 90), 1),
        "max_ms": round(max(totals), 1),
        "upload_median_ms": round(statistics.median(s["upload_s"] * 1000 for s in samples), 1),
        "render_and_record_median_ms": round(
            statistics.median(s["after_upload_s"] * 1000 for s in samples), 1
        ),
    }
    if baseline is not None:
        summary["hostile_accepted_per_round"] = round(
            statistics.mean(s["hostile_accepted"] for s in samples), 1
        )
        summary["ratio_median"] = round(summary["median_ms"] / baseline["median_ms"], 2)
        summary["ratio_p90"] = round(summary["p90_ms"] / baseline["p90_ms"], 2)
        summary["goal_met"] = summary["ratio_median"] <= 1.5
    return summary


def _calibration() -> dict[str, Any]:
    """The estimate against the measured CPU time of a full derivative set (best of 2)."""
    drawings = {
        "honest: line arrow": (FIXTURES / "honest" / "line_arrow.svg").read_bytes(),
        "honest: shadow card": (FIXTURES / "honest" / "shadow_card.svg").read_bytes(),
        "honest: illustration (120 paths)": (FIXTURES / "honest" / "illustration.svg").read_bytes(),
        "near budget (accepted)": near_budget_svg(0),
        "mask_canvas_bomb (refused)": (
            FIXTURES / "malicious" / "mask_canvas_bomb.svg"
        ).read_bytes(),
    }
    render_missing(drawings["honest: line arrow"], outputs())  # warm up
    found = {}
    for name, raw in drawings.items():
        clean = sanitise_svg(raw, UNBOUNDED)
        best = float("inf")
        for _ in range(2):
            began = time.process_time()
            render_missing(clean.data, outputs())
            best = min(best, time.process_time() - began)
        found[f"calibration: {name}"] = {
            "estimate_units": clean.render_cost,
            "cpu_ms": round(best * 1000, 1),
            "units_per_cpu_us": round(clean.render_cost / (best * 1e6), 2),
        }
    return found


def run() -> dict[str, Any]:
    base = bootstrap()
    results: dict[str, Any] = {}
    try:
        with _pipeline(base) as container:
            shelf = Shelf(container)
            _round(shelf, None)  # warm up: render processes, connections, consumer groups
            alone: list[dict[str, float]] = []
            behind: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
            for _ in range(ROUNDS):
                for name, hostile in CASES.items():
                    alone.append(_round(shelf, None))
                    behind[name].append(_round(shelf, hostile))
            baseline = _summary(alone, None)
            results["honest icon alone (baseline)"] = baseline
            for name, samples in behind.items():
                results[name] = _summary(samples, baseline)
        results.update(_calibration())
    finally:
        base.close()
    return {
        "name": "hostile uploads: an honest icon's upload-to-publishable time",
        "unit": "ms (upload to Icon.DerivativesRecorded); goal: ratio to the baseline <= 1.5",
        "results": results,
    }
