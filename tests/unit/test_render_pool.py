"""`RenderPool`: render passes in processes of their own, a CPU deadline per pass, cheapest
first; what happens to a pass whose process is killed, crashes or is starved of CPU."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from pathlib import Path

import pytest

from pipelines.render import Output, passes, render_missing
from pipelines.render_pool import (
    RenderCrashed,
    Rendered,
    RenderPool,
    RenderProcessLost,
    RenderStalled,
    RenderTimedOut,
)
from pipelines.svg_policy import SvgLimits, sanitise_svg

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HONEST = sanitise_svg((FIXTURES / "honest" / "shadow_card.svg").read_bytes()).data
# Refused by the cost model; rendered anyway here, it needs tens of seconds of CPU.
HEAVY = sanitise_svg(
    (FIXTURES / "malicious" / "heavy_path_use.svg").read_bytes(),
    SvgLimits(max_render_cost=10**15),
).data
PNG = (Output("png", 64),)


@pytest.fixture
def pool() -> Iterator[RenderPool]:
    with RenderPool(2, deadline_s=0.5, name="test-render") as made:
        yield made


def _busy_pid(pool: RenderPool) -> int:
    """The pid of the process running a pass, once one is."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        running = pool.running()
        if running:
            return running[0]
        time.sleep(0.01)
    raise AssertionError("no pass started")


def test_passes_group_each_png_size_with_what_is_made_from_it() -> None:
    wanted = (
        Output("png", 64),
        Output("png", 128),
        Output("png", 256),
        Output("webp", 256),
        Output("pdf", 64),
        Output("preview", 128),
    )
    assert passes(wanted) == [
        (Output("png", 64),),
        (Output("png", 128), Output("preview", 128)),
        (Output("png", 256), Output("webp", 256)),
        (Output("pdf", 64),),
    ]


def test_a_pass_past_its_cpu_deadline_is_stopped_while_the_other_process_goes_on(
    pool: RenderPool,
) -> None:
    heavy = pool.submit(HEAVY, PNG, label="icon heavy")
    _busy_pid(pool)
    began = time.monotonic()
    honest = pool.submit(HONEST, PNG)
    assert honest.result(timeout=10) == render_missing(HONEST, PNG)
    honest_s = time.monotonic() - began
    with pytest.raises(RenderTimedOut, match=r"the png-64 pass of icon heavy used more than"):
        heavy.result(timeout=60)
    assert honest_s < 5  # never waited for the heavy pass
    # The killed process was replaced: both processes render again.
    again = [pool.submit(HONEST, PNG) for _ in range(2)]
    assert [future.result(timeout=10) for future in again] == [render_missing(HONEST, PNG)] * 2


def test_the_cheapest_queued_pass_runs_first() -> None:
    finished: list[str] = []
    with RenderPool(1, deadline_s=0.5, name="test-order") as pool:
        blocker = pool.submit(HEAVY, PNG, priority=0)
        _busy_pid(pool)
        costly = pool.submit(HONEST, PNG, priority=900_000)
        cheap = pool.submit(HONEST, PNG, priority=20_000)
        costly.add_done_callback(lambda _future: finished.append("costly"))
        cheap.add_done_callback(lambda _future: finished.append("cheap"))
        for future in (cheap, costly):
            future.result(timeout=60)
        with pytest.raises(RenderTimedOut):
            blocker.result(timeout=60)
    assert finished == ["cheap", "costly"]


def test_cancelling_a_running_pass_stops_its_process(pool: RenderPool) -> None:
    heavy = pool.submit(HEAVY, PNG)
    pid = _busy_pid(pool)
    pool.cancel(heavy)
    assert _gone(pid)
    assert heavy.done()
    assert isinstance(heavy.exception(), CancelledError)
    assert pool.submit(HONEST, PNG).result(timeout=10) == render_missing(HONEST, PNG)


@pytest.mark.parametrize(
    ("sent", "expected", "name"),
    [
        (signal.SIGKILL, RenderProcessLost, "SIGKILL"),
        (signal.SIGTERM, RenderProcessLost, "SIGTERM"),
        (signal.SIGSEGV, RenderCrashed, "SIGSEGV"),
    ],
)
def test_a_killed_process_is_transient_a_crashed_one_poison(
    pool: RenderPool, sent: signal.Signals, expected: type[Exception], name: str
) -> None:
    heavy = pool.submit(HEAVY, PNG)
    os.kill(_busy_pid(pool), sent)
    with pytest.raises(expected, match=name):
        heavy.result(timeout=30)
    assert pool.submit(HONEST, PNG).result(timeout=10) == render_missing(HONEST, PNG)


def test_a_pass_starved_of_cpu_is_transient() -> None:
    with RenderPool(1, deadline_s=5, stall_s=0.5, name="test-starved") as pool:
        heavy: Future[Rendered] = pool.submit(HEAVY, PNG)
        pid = _busy_pid(pool)
        os.kill(pid, signal.SIGSTOP)  # the machine gives it no CPU
        try:
            with pytest.raises(RenderStalled, match="the machine is overloaded"):
                heavy.result(timeout=30)
        finally:
            if not _gone(pid, wait_s=0):
                os.kill(pid, signal.SIGCONT)
        assert pool.submit(HONEST, PNG).result(timeout=10) == render_missing(HONEST, PNG)


def _gone(pid: int, wait_s: float = 10) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def test_a_pool_that_cannot_start_processes_fails_every_pass_as_transient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = RenderPool(1, deadline_s=1, name="test-broken")

    def no_processes() -> object:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(pool, "_spawn", no_processes)
    try:
        first = pool.submit(HONEST, PNG)
        with pytest.raises(RenderProcessLost, match="the render pool failed: OSError"):
            first.result(timeout=10)
        with pytest.raises(RenderProcessLost, match="the render pool failed"):
            pool.submit(HONEST, PNG)
    finally:
        pool.close()
