"""A time limit on rendering: `TimedRenderer` renders in a child process and gives up after
``timeout`` seconds (the child is killed and a fresh one is started for the next icon).

The SVG policy bounds what a stored drawing expands to, but a renderer can still be slow in ways
the policy does not model; the media worker must not hang on one icon. A timeout raises
`RenderTimedOut`, which the worker reports as `RenderFailed`, so the runner retries the icon and
finally dead-letters it. Rendering runs in one ``spawn``-ed child at a time (the worker renders
one icon at a time anyway); only the SVG, the outputs and the rendered bytes cross the pipe.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterable
from multiprocessing.pool import Pool

from pipelines.render import DEFAULT_PARAMS, Output, RenderParams, render_missing

RenderFunction = Callable[[bytes, Iterable[Output], RenderParams], dict[Output, bytes]]

DEFAULT_RENDER_TIMEOUT = 60.0


class RenderTimedOut(RuntimeError):
    """Rendering one original took longer than the renderer's time limit (the child was killed)."""


class TimedRenderer:
    """``render_missing`` in a child process, bounded by ``timeout`` seconds per original."""

    def __init__(self, timeout: float = DEFAULT_RENDER_TIMEOUT) -> None:
        self.timeout = timeout
        self._pool: Pool | None = None
        self._lock = threading.Lock()

    def __call__(
        self, svg: bytes, wanted: Iterable[Output], params: RenderParams = DEFAULT_PARAMS
    ) -> dict[Output, bytes]:
        with self._lock:
            if self._pool is None:
                self._pool = multiprocessing.get_context("spawn").Pool(1)
                self._pool.apply(_ready)  # start-up (imports) does not count against the limit
            pending = self._pool.apply_async(render_missing, (svg, tuple(wanted), params))
            try:
                return pending.get(self.timeout)
            except multiprocessing.TimeoutError:
                self._stop()
                raise RenderTimedOut(f"rendering took longer than {self.timeout:g} s") from None

    def close(self) -> None:
        """Stops the child process (a later call starts a new one)."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def _ready() -> None:
    """Runs in the child once it has imported this module (and so the renderer)."""
