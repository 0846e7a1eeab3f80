"""The render pool: render passes in processes of their own, each bounded by a CPU deadline.

A *pass* is what one parse of the SVG is drawn into: one PNG size with the WebP or the preview
made from it, or the PDF (`pipelines.render.passes`). Each pass runs in one of ``processes``
render processes (forked from a server that has imported the renderer), cheapest first
(``priority``: the icon's estimated render cost), and may use ``deadline_s``
seconds of **CPU time**; past that its process is killed, a fresh one takes its place, and
the other processes go on, so one bad file never holds the queue. CPU time, not wall-clock
time: a busy machine slows an honest render down but does not make it time out.

What can happen to a pass, and its failure class (`stream.failures`):

- done: the outputs' bytes;
- `RenderTimedOut` (poison): past its CPU deadline. The same file would time out again;
- `RenderError` (poison): the renderer refused the file (unreadable, cannot be drawn, more
  memory than ``memory_bytes``, the limit each render process runs with);
- `RenderCrashed` (poison): the process died of a signal bad input causes (SIGSEGV, SIGBUS,
  SIGILL, SIGFPE, SIGABRT);
- `RenderProcessLost` (transient): the process was killed from outside (SIGKILL: the OOM
  killer, an operator; SIGTERM: a shutdown) or exited: the machine, not the file;
- `RenderStalled` (transient): the pass ran ``stall_s`` of wall-clock time without reaching
  its CPU deadline: the machine is starving it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import multiprocessing
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from pipelines.render import (
    DEFAULT_PARAMS,
    Output,
    RenderError,
    RenderParams,
    passes,
    render_missing,
)
from stream.failures import TransientError

log = logging.getLogger("iconmarket.media")

DEFAULT_DEADLINE_S = 5.0
MEMORY_BYTES = 1 << 30
"""The address space each render process may use (a render process needs about 70 MB)."""
_TICKS = os.sysconf("SC_CLK_TCK")
_POLL_S = 0.02
_CRASH_SIGNALS = frozenset(
    {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}
)

Rendered = dict[Output, bytes]
_WARM_UP = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4" width="4" height="4">'
    b'<rect width="2" height="2" fill="#123"/></svg>'
)


class RenderTimedOut(RuntimeError):
    """A pass used more CPU time than its deadline; its process was killed. Poison: not a
    `TimeoutError` on purpose (those are a slow dependency's, classified transient)."""


class RenderCrashed(RuntimeError):
    """The render process died of a signal that bad input causes (poison)."""


class RenderProcessLost(TransientError):
    """The render process was killed from outside or exited (transient: the machine)."""


class RenderStalled(TransientError):
    """A pass got too little CPU for too long (transient: the machine is overloaded)."""


@dataclass(eq=False)
class _Task:
    svg: bytes
    outputs: tuple[Output, ...]
    params: RenderParams
    future: Future[Rendered]
    label: str


@dataclass(eq=False)
class _Slot:
    """One render process and the pass it is running."""

    process: Any
    conn: Connection
    ready: bool = False
    task: _Task | None = None
    cpu_at_start: float = 0.0
    started: float = 0.0


@dataclass(order=True)
class _Queued:
    priority: float
    seq: int
    task: _Task = field(compare=False)


class RenderPool:
    """``processes`` render processes and a queue of passes, cheapest first."""

    def __init__(
        self,
        processes: int,
        deadline_s: float = DEFAULT_DEADLINE_S,
        *,
        stall_s: float | None = None,
        niceness: int = 0,
        memory_bytes: int = MEMORY_BYTES,
        name: str = "render",
    ) -> None:
        if processes < 1 or deadline_s <= 0:
            raise ValueError("a render pool needs at least 1 process and a positive deadline")
        self.processes = processes
        self.deadline_s = deadline_s
        self.stall_s = stall_s if stall_s is not None else max(10 * deadline_s, 60.0)
        self.niceness = niceness
        self.memory_bytes = memory_bytes
        self.name = name
        self._context = _forkserver()
        # Reentrant: resolving a future runs its callbacks, which may cancel other passes.
        self._lock = threading.RLock()
        self._queue: list[_Queued] = []
        self._seq = itertools.count()
        self._cancelled: set[int] = set()
        self._slots: list[_Slot] = []
        self._closed = False
        self._broken: RenderProcessLost | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread: threading.Thread | None = None

    # --- the caller's side

    def submit(
        self,
        svg: bytes,
        outputs: Sequence[Output],
        params: RenderParams = DEFAULT_PARAMS,
        *,
        priority: float = 0.0,
        label: str = "",
    ) -> Future[Rendered]:
        """Queue one pass; the future gives the outputs' bytes or one of the errors above."""
        future: Future[Rendered] = Future()
        task = _Task(svg, tuple(outputs), params, future, label)
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._closed:
                raise RuntimeError("the render pool is closed")
            heapq.heappush(self._queue, _Queued(priority, next(self._seq), task))
            self._start()
        self._wake()
        return future

    def running(self) -> list[int]:
        """The pids of the render processes running a pass now (diagnostics, tests)."""
        with self._lock:
            return [slot.process.pid for slot in self._slots if slot.task is not None]

    def cancel(self, future: Future[Rendered]) -> None:
        """Drop a queued pass, or stop a running one (its process is replaced)."""
        with self._lock:
            self._cancelled.add(id(future))
        self._wake()

    def __call__(
        self, svg: bytes, wanted: Iterable[Output], params: RenderParams = DEFAULT_PARAMS
    ) -> Rendered:
        """Every pass of ``wanted``, waited for (the first failure is raised, the rest
        cancelled)."""
        futures = [self.submit(svg, group, params) for group in passes(wanted)]
        rendered: Rendered = {}
        try:
            for future in futures:
                rendered.update(future.result())
        except BaseException:
            for future in futures:
                self.cancel(future)
            raise
        return rendered

    def close(self) -> None:
        """Stops every render process; queued passes fail with `RenderProcessLost`."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake()
        if thread is not None:
            thread.join(timeout=30)
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the dispatcher thread

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._dispatch, name=f"{self.name}-pool", daemon=True
            )
            self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _dispatch(self) -> None:
        lost = RenderProcessLost("the render pool was closed")
        try:
            self._slots = [self._spawn() for _ in range(self.processes)]
            while True:
                with self._lock:
                    if self._closed:
                        break
                    self._drop_cancelled()
                    self._assign()
                self._wait_and_collect()
                self._enforce_deadlines()
        except BaseException as exc:  # the pool cannot go on: fail every pass, now and later
            lost = RenderProcessLost(f"the render pool failed: {type(exc).__name__}: {exc}")
            with self._lock:
                self._broken = lost
            log.exception(
                "render pool failed; every pass fails as transient", extra={"pool": self.name}
            )
        finally:
            self._shutdown(lost)

    def _spawn(self) -> _Slot:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(child, self.niceness, self.memory_bytes),
            name=f"{self.name}-process",
            daemon=True,
        )
        process.start()
        child.close()
        return _Slot(process, parent)

    def _drop_cancelled(self) -> None:
        if not self._cancelled:
            return
        kept = []
        for queued in self._queue:
            if id(queued.task.future) in self._cancelled:
                self._cancelled.discard(id(queued.task.future))
                queued.task.future.cancel()
            else:
                kept.append(queued)
        heapq.heapify(kept)
        self._queue = kept
        for index, slot in enumerate(self._slots):
            if slot.task is not None and id(slot.task.future) in self._cancelled:
                self._cancelled.discard(id(slot.task.future))
                self._replace(index, None)
        self._cancelled &= {id(q.task.future) for q in self._queue}

    def _assign(self) -> None:
        for slot in self._slots:
            if not self._queue:
                return
            if not slot.ready or slot.task is not None:
                continue
            task = heapq.heappop(self._queue).task
            if not task.future.set_running_or_notify_cancel():
                continue
            slot.task = task
            slot.cpu_at_start = _cpu_seconds(slot.process.pid)
            slot.started = time.monotonic()
            slot.conn.send((task.svg, task.outputs, task.params))

    def _wait_and_collect(self) -> None:
        conns: list[Any] = [self._wake_r]
        for slot in self._slots:
            conns += [slot.conn, slot.process.sentinel]
        busy = any(slot.task is not None for slot in self._slots)
        for ready in wait(conns, timeout=_POLL_S if busy else 1.0):
            if ready is self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    while self._wake_r.recv(4096):
                        pass
        for index, slot in enumerate(self._slots):
            self._collect(index, slot)

    def _collect(self, index: int, slot: _Slot) -> None:
        try:
            if slot.conn.poll():
                message = slot.conn.recv()
                if message == "ready":
                    slot.ready = True
                    return
                self._finish(slot, message)
                return
        except (EOFError, OSError):
            pass
        if not slot.process.is_alive():
            slot.process.join()
            error = _death(slot.process.exitcode, self._described(slot))
            with self._lock:
                self._replace(index, error)

    def _finish(self, slot: _Slot, message: tuple[str, Any]) -> None:
        with self._lock:
            task, slot.task = slot.task, None
            if task is None:
                return
            outcome, payload = message
            if outcome == "done":
                task.future.set_result(payload)
            else:
                task.future.set_exception(RenderError(str(payload)))

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            for index, slot in enumerate(self._slots):
                if slot.task is None:
                    continue
                used = _cpu_seconds(slot.process.pid) - slot.cpu_at_start
                if used > self.deadline_s:
                    self._replace(
                        index,
                        RenderTimedOut(
                            f"{self._described(slot)} used more than {self.deadline_s:g} s of "
                            "CPU time"
                        ),
                    )
                elif now - slot.started > self.stall_s:
                    self._replace(
                        index,
                        RenderStalled(
                            f"{self._described(slot)} got {used:.1f} s of CPU time in "
                            f"{self.stall_s:g} s: the machine is overloaded"
                        ),
                    )

    def _described(self, slot: _Slot) -> str:
        task = slot.task
        if task is None:
            return "the render process"
        names = "+".join(f"{o.kind}-{o.size}" for o in task.outputs)
        return f"the {names} pass" + (f" of {task.label}" if task.label else "")

    def _replace(self, index: int, error: BaseException | None) -> None:
        """Kill slot ``index``'s process, fail (or cancel) its pass, start a fresh one."""
        slot = self._slots[index]
        task, slot.task = slot.task, None
        _kill(slot)
        if task is not None:
            task.future.set_exception(error if error is not None else CancelledError())
        self._slots[index] = self._spawn()

    def _shutdown(self, lost: RenderProcessLost) -> None:
        with self._lock:
            for slot in self._slots:
                if slot.task is not None:
                    slot.task.future.set_exception(lost)
                    slot.task = None
                _kill(slot)
            for queued in self._queue:
                if queued.task.future.set_running_or_notify_cancel():
                    queued.task.future.set_exception(lost)
            self._queue = []


def _forkserver() -> Any:
    """Render processes fork from a server that has imported the renderer once, so a killed
    one is replaced in milliseconds (a spawned one takes a second or more to import it)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipelines.render_pool", "cairosvg.surface", "PIL.Image"])
    return context


def _kill(slot: _Slot) -> None:
    with contextlib.suppress(Exception):
        slot.conn.close()
    if slot.process.is_alive():
        slot.process.kill()
    slot.process.join(timeout=10)


def _death(exitcode: int | None, what: str) -> BaseException:
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else ""
        if number in _CRASH_SIGNALS:
            return RenderCrashed(f"{what} crashed the renderer ({name or number})")
        return RenderProcessLost(f"{what}: its process was killed ({name or number})")
    return RenderProcessLost(f"{what}: its process exited ({exitcode})")


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


# --- the render processes


def _serve(conn: Connection, niceness: int, memory_bytes: int) -> None:
    """A render process: renders each pass it is sent until its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops us
    if niceness:
        os.nice(niceness)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    render_missing(_WARM_UP, [Output("png", 16)])  # first-use setup, before any pass is timed
    conn.send("ready")
    while True:
        try:
            svg, outputs, params = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("done", render_missing(svg, outputs, params)))
        except MemoryError:
            conn.send(("error", f"the render needs more than {memory_bytes >> 20} MiB"))
        except Exception as exc:  # every renderer failure is the input's
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
