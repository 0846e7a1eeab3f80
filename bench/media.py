"""Media pipeline: full derivative sets (PNGx4 + WebP + PDF + preview) per second.

Generates ``ICONMARKET_BENCH_ICONS`` (default 1,000) varied SVG icons, stores them as originals
of real icons (through the commands), then runs the batch re-render (`pipelines.rerender`, the
code behind ``iconmarket media rerender``) on one process and on every core, each time with a
fresh renderer version so every output is rendered, uploaded to MinIO and recorded. A third
run repeats the last version: everything is stored, so it measures the resume (skip) path.
Also the pure rendering rate without I/O on one core. Besides wall-clock rates (inflated by
whatever else runs on the machine) it reports CPU milliseconds per icon (this process, the
worker processes, the MinIO server) and the rate that CPU budget allows on an idle box.

Anchor: ~12 WebP/s per worker in a production Go pipeline. Goal on 2 cores: >= 50 full sets/s.
"""

from __future__ import annotations

import functools
import os
import random
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.stats import percentile
from commands import messages as m
from infra.bootstrap import Container, bootstrap, media_stores
from pipelines.render import content_hash, render_all
from pipelines.rerender import Selection, current_originals, rerender
from tests.support import ctx

ICONS = int(os.environ.get("ICONMARKET_BENCH_ICONS", "1000"))
PURE_SAMPLE = 100
PALETTE = ("#1f2937", "#e11d48", "#2563eb", "#16a34a", "#f59e0b", "#7c3aed", "#0f766e")


def generated_svg(seed: int) -> bytes:
    """A varied 24x24 icon: strokes, fills, opacity, a gradient now and then."""
    rng = random.Random(seed)
    parts = []
    if rng.random() < 0.3:
        a, b = rng.sample(PALETTE, 2)
        parts.append(
            f'<defs><linearGradient id="g"><stop offset="0" stop-color="{a}"/>'
            f'<stop offset="1" stop-color="{b}"/></linearGradient></defs>'
        )
    for _ in range(rng.randint(2, 7)):
        colour = "url(#g)" if parts and rng.random() < 0.3 else rng.choice(PALETTE)
        kind = rng.choice(("path", "circle", "rect", "polyline"))
        if kind == "circle":
            x, y, r = rng.uniform(4, 20), rng.uniform(4, 20), rng.uniform(1, 6)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colour}" '
                f'opacity="{rng.uniform(0.4, 1):.2f}"/>'
            )
        elif kind == "rect":
            x, y = rng.uniform(2, 14), rng.uniform(2, 14)
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{rng.uniform(3, 8):.1f}" '
                f'height="{rng.uniform(3, 8):.1f}" rx="{rng.uniform(0, 2):.1f}" fill="{colour}"/>'
            )
        else:
            points = " ".join(
                f"{rng.uniform(2, 22):.1f},{rng.uniform(2, 22):.1f}"
                for _ in range(rng.randint(3, 6))
            )
            tag = "polyline" if kind == "polyline" else "path"
            shape = (
                f'points="{points}"' if tag == "polyline" else f'd="M{points.replace(" ", " L")}"'
            )
            parts.append(
                f'<{tag} {shape} fill="none" stroke="{rng.choice(PALETTE)}" '
                f'stroke-width="{rng.uniform(1, 3):.1f}" stroke-linecap="round" '
                'stroke-linejoin="round"/>'
            )
    body = "".join(parts)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24">'
        f"<!-- bench {seed} -->{body}</svg>"
    ).encode()


def _catalog(container: Container, count: int) -> uuid.UUID:
    """A set of ``count`` icons, each with its generated original stored and recorded."""
    owner = ctx(f"bench-media-{uuid.uuid4().hex[:6]}", "contributor")
    bus = container.bus
    family_id = bus.execute(m.CreateFamily(name="Bench Media"), owner).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="Bench Set", style="line"), owner
    ).aggregate_id
    base = random.randrange(10**9)
    svgs = [generated_svg(base + n) for n in range(count)]

    def store(svg: bytes) -> m.SvgOriginal:
        digest = content_hash(svg)
        key = f"originals/{digest}.svg"
        container.private_store.put_bytes(key, svg, content_type="image/svg+xml")
        return m.SvgOriginal(key=key, content_hash=digest, size_bytes=len(svg), width=24, height=24)

    with ThreadPoolExecutor(16) as pool:
        originals = list(pool.map(store, svgs))
    price = m.Money(amount_minor=100, currency="USD")
    created = [
        bus.submit(m.CreateIcon(set_id=set_id, name=f"bench {n}", price=price), owner)
        for n in range(count)
    ]
    icon_ids = [future.result().aggregate_id for future in created]
    recorded = [
        bus.submit(m.RecordOriginal(icon_id=icon_id, original=original), owner)
        for icon_id, original in zip(icon_ids, originals, strict=True)
    ]
    for future in recorded:
        future.result()
    return set_id


def _minio_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if command and command[0].endswith(b"/minio") and b"server" in command:
                return int(entry.name)
    return None


def _cpu_clock() -> Callable[[], dict[str, float]]:
    """CPU seconds so far of this process, its reaped children (the re-render's worker
    processes) and the MinIO server: unlike wall time, not inflated by other load."""
    ticks = os.sysconf("SC_CLK_TCK")
    minio = _minio_pid()

    def read() -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        server = 0.0
        if minio is not None:
            fields = Path(f"/proc/{minio}/stat").read_text().rsplit(")", 1)[1].split()
            server = (int(fields[11]) + int(fields[12])) / ticks
        return {
            "parent": time.process_time(),
            "workers": children.ru_utime + children.ru_stime,
            "minio": server,
        }

    return read


def _cpu_per_icon(before: dict[str, float], after: dict[str, float], icons: int) -> dict[str, Any]:
    spent = {name: (after[name] - before[name]) * 1000 / icons for name in before}
    total = sum(spent.values())
    cores = os.cpu_count() or 1
    return {
        **{f"cpu_ms_{name}": round(ms, 1) for name, ms in spent.items()},
        "cpu_ms_per_icon": round(total, 1),
        "idle_box_icons_per_s": round(cores * 1000 / total, 1) if total else None,
    }


def _pure_rate() -> dict[str, Any]:
    svgs = [generated_svg(10_000 + n) for n in range(PURE_SAMPLE)]
    times = []
    cpu_began = time.process_time()
    for svg in svgs:
        began = time.perf_counter()
        render_all(svg)
        times.append(time.perf_counter() - began)
    cpu_ms = (time.process_time() - cpu_began) * 1000 / PURE_SAMPLE
    return {
        "icons": PURE_SAMPLE,
        "icons_per_s": round(PURE_SAMPLE / sum(times), 1),
        "median_ms_per_set": round(statistics.median(times) * 1000, 1),
        "p90_ms_per_set": round(percentile(times, 90) * 1000, 1),
        "cpu_ms_per_icon": round(cpu_ms, 1),
        "idle_box_icons_per_s": round((os.cpu_count() or 1) * 1000 / cpu_ms, 1),
    }


def run() -> dict[str, Any]:
    container = bootstrap()
    results: dict[str, Any] = {"render only (no I/O), 1 core": _pure_rate()}
    try:
        set_id = _catalog(container, ICONS)
        jobs = current_originals(container.applications.catalog, Selection(set_id=set_id))
        assert len(jobs) == ICONS, (len(jobs), ICONS)
        cores = os.cpu_count() or 1
        version = ""
        clock = _cpu_clock()
        for workers in sorted({1, cores}):
            version = f"bench-{uuid.uuid4().hex[:8]}"
            before = clock()
            summary = rerender(
                functools.partial(media_stores, container.settings),
                container.bus,
                jobs,
                workers=workers,
                renderer_version=version,
            )
            assert not summary.failed, summary.failed
            results[f"media rerender, {workers} process(es)"] = {
                "icons": summary.selected,
                "rendered": summary.rendered,
                "outputs_written": summary.outputs_written,
                "icons_per_s": round(summary.rate, 1),
                "seconds": round(summary.seconds, 1),
                **_cpu_per_icon(before, clock(), summary.selected),
            }
        before = clock()
        resumed = rerender(
            functools.partial(media_stores, container.settings),
            container.bus,
            jobs,
            workers=cores,
            renderer_version=version,
        )
        results[f"media rerender again (all stored), {cores} processes"] = {
            "icons": resumed.selected,
            "skipped": resumed.skipped,
            "outputs_written": resumed.outputs_written,
            "icons_per_s": round(resumed.rate, 1),
            "seconds": round(resumed.seconds, 1),
            **_cpu_per_icon(before, clock(), resumed.selected),
        }
    finally:
        container.close()
    return {
        "name": "media: full derivative sets (PNG 64/128/192/256 + WebP + PDF + preview)",
        "unit": "icons/s, rendered and uploaded to MinIO and recorded; goal >= 50 on 2 cores",
        "results": results,
    }
