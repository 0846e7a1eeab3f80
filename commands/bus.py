"""The command bus: route a command to its handler, save what it changed, return its position.

Two ways to save:
- direct: one store transaction per command;
- group commit: each command is prepared (loads, domain decisions) in the caller's thread, so
  the database round trips of many commands overlap; one writer thread per application then
  drains the prepared commands and saves them together in one transaction (the library
  serialises writers of one table, so fewer, larger transactions are how throughput grows).
  A command prepared on a version that a save has since overtaken, or touching an aggregate
  already in the batch, is prepared again by the writer before the next batch, so per-aggregate
  order is the arrival order at the writer. If a batch's transaction fails, each of its commands
  is retried alone, so one bad command fails alone.

Nothing can hang a context:
- The writer is supervised: an error outside the guarded save fails only its batch's commands
  (each with that error) and the writer goes on with the next batch; a future cancelled by its
  caller is skipped, and results are only ever set on futures not yet done. A writer thread that
  died anyway is reported by ``health()`` and restarted by the next ``submit``.
- Every command has a deadline (``deadline_s`` from its submission). The command either happened
  once or not at all: a command still waiting when its deadline passes is dropped (the writer
  fails it, or the caller cancels it) and is never saved afterwards; one the writer has already
  taken completes or fails as a whole, and the caller waits up to one more deadline for that
  outcome. Only when even that passes (the store hangs mid-transaction) is the outcome unknown:
  the caller gets ``CommandDeadlineExceeded`` either way, and a retry with the same
  Idempotency-Key is safe.
- A commit whose acknowledgement was lost (the library retries it into an ``IntegrityError``) is
  recognised: every command is saved with an idempotency record, the client's key or, without
  one, an internal key of this execution (``bus:<uuid4>``), and a retry first looks that record
  up and answers the first result instead of applying the command again.
- A store that is down or restarting (its connections cut, a save raising without saying whether
  it committed) is waited for, briefly and repeatedly, up to the deadline: once it answers, the
  record tells whether the save committed (the command is answered) or not (it is saved now).
  A command that could not be applied in that time fails with ``StoreUnavailable`` (503, not
  applied); one whose save raised and whose record could not be read since is the unknown
  outcome above (``CommandDeadlineExceeded``). A store failure never reaches the caller as
  "failed" for a command that was applied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing import persistence
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from commands.applications import Applications, ContextApplication
from commands.errors import (
    CommandDeadlineExceeded,
    IdempotencyKeyReused,
    StoreUnavailable,
    VersionConflict,
)
from commands.persistence import IdempotencyRecord, IdempotentRecorder
from commands.results import CommandContext, CommandResult
from commands.unit_of_work import UnitOfWork

Handler = Callable[[Any, UnitOfWork, CommandContext], UUID]
CONFLICT_RETRIES = 3
DEFAULT_DEADLINE_S = 10.0
INTERNAL_KEY_PREFIX = "bus:"
STORE_ERRORS = (
    persistence.OperationalError,
    persistence.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
"""The store is down, restarting or its connection was cut (a lock or statement timeout too):
worth waiting for, never the command's fault."""
STORE_RETRY_PAUSE_S = 0.1
log = logging.getLogger("iconmarket.commands")


@dataclass(frozen=True)
class Route:
    context: str
    handler: Handler


def fingerprint(command: object, ctx: CommandContext) -> str:
    """A stable digest of the request, so a reused key with a different request is caught."""
    fields = {
        f.name: getattr(command, f.name)
        for f in dataclasses.fields(command)  # type: ignore[arg-type]
        if not f.metadata.get("secret")
    }
    payload = {"type": type(command).__name__, "actor": ctx.actor, "fields": fields}
    encoded = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass
class _Prepared:
    command: object
    ctx: CommandContext
    primary_id: UUID
    primary_version: int
    changed: list[Aggregate]
    record: IdempotencyRecord | None

    def touched(self) -> set[UUID]:
        return {a.id for a in self.changed}


@dataclass
class BusStats:
    """Transactions written and the commands they carried (batching shows as fewer transactions)."""

    transactions: int = 0
    commands: int = 0
    fallbacks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, commands: int, *, fallback: bool = False) -> None:
        with self.lock:
            self.transactions += 1
            self.commands += commands
            self.fallbacks += int(fallback)


@dataclass
class _Waiting:
    command: object
    ctx: CommandContext
    deadline: float
    """``time.monotonic()`` after which the command must not be saved any more."""
    internal_key: str | None
    prepared: _Prepared | None = None
    future: Future[CommandResult] = field(default_factory=Future)
    submitted_at: float = field(default_factory=time.monotonic)

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


@dataclass(frozen=True)
class WriterHealth:
    """One bounded context's group-commit writer: alive, and how long its oldest command has
    waited (queued or in the batch being written); healthy while that stays below the deadline."""

    context: str
    alive: bool
    oldest_wait_s: float
    deadline_s: float

    @property
    def name(self) -> str:
        return f"command_writer:{self.context}"

    @property
    def healthy(self) -> bool:
        return self.alive and self.oldest_wait_s < self.deadline_s

    @property
    def problem(self) -> str | None:
        if not self.alive:
            return "the group-commit writer thread is not running"
        if self.oldest_wait_s >= self.deadline_s:
            return (
                f"a command has waited {self.oldest_wait_s:.1f}s, "
                f"beyond the {self.deadline_s:g}s deadline"
            )
        return None


@dataclass
class _Writer:
    app: ContextApplication
    waiting: queue.Queue[_Waiting | None]
    thread: threading.Thread | None = None
    in_flight: list[_Waiting] = field(default_factory=list)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def oldest_submission(self) -> float | None:
        with self.waiting.mutex:
            queued = [w.submitted_at for w in list(self.waiting.queue)[:1] if w is not None]
        busy = [w.submitted_at for w in list(self.in_flight) if not w.future.done()]
        return min([*queued, *busy], default=None)


SAVED_VERSIONS_KEPT = 100_000


class CommandBus:
    """Executes commands; thread-safe. ``group_commit`` batches concurrent commands per table;
    every command has ``deadline_s`` to complete (see the module docstring)."""

    def __init__(
        self,
        apps: Applications,
        routes: dict[type, Route],
        *,
        group_commit: bool = False,
        max_batch: int = 256,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> None:
        self.apps = apps
        self.routes = routes
        self.group_commit = group_commit
        self.max_batch = max_batch
        self.deadline_s = deadline_s
        self.stats = BusStats()
        self._saved_versions: dict[UUID, int] = {}
        self._writers: dict[str, _Writer] = {}
        self._writers_lock = threading.Lock()
        self._closed = False
        if group_commit:
            for app in apps.all():
                writer = _Writer(app, queue.Queue())
                self._writers[app.context] = writer
                self._start(writer)

    def execute(self, command: object, ctx: CommandContext) -> CommandResult:
        """Run ``command`` and wait for its result (domain and command errors are raised);
        ``CommandDeadlineExceeded`` when it does not complete within the deadline."""
        waiting = self._submit(command, ctx)
        try:
            return waiting.future.result(timeout=max(0.0, waiting.deadline - time.monotonic()))
        except FutureTimeout:
            pass
        if waiting.future.cancel():
            raise self._deadline_error("it was not applied") from None
        try:  # the writer took it into a transaction, which completes or fails as a whole
            return waiting.future.result(timeout=self.deadline_s)
        except FutureTimeout:
            raise self._deadline_error(
                "its outcome is unknown; retry with the same Idempotency-Key"
            ) from None

    def submit(self, command: object, ctx: CommandContext) -> Future[CommandResult]:
        """Queue ``command``; the future ends with its result, its error, or
        ``CommandDeadlineExceeded`` when the writer drops it past its deadline."""
        return self._submit(command, ctx).future

    def health(self) -> list[WriterHealth]:
        """One row per group-commit writer (none in direct mode)."""
        now = time.monotonic()
        rows = []
        for context, writer in self._writers.items():
            oldest = writer.oldest_submission()
            waited = 0.0 if oldest is None else now - oldest
            rows.append(WriterHealth(context, writer.alive(), waited, self.deadline_s))
        return rows

    def close(self) -> None:
        self._closed = True
        for writer in self._writers.values():
            writer.waiting.put(None)
        for writer in self._writers.values():
            if writer.thread is not None:
                writer.thread.join(timeout=10)

    def _submit(self, command: object, ctx: CommandContext) -> _Waiting:
        route = self._route(command)
        internal_key = None if ctx.idempotency_key else INTERNAL_KEY_PREFIX + uuid.uuid4().hex
        waiting = _Waiting(command, ctx, time.monotonic() + self.deadline_s, internal_key)
        if not self.group_commit:
            try:
                waiting.future.set_result(self._execute_alone(route, waiting))
            except Exception as exc:  # the future carries every failure to the caller
                _fail(waiting.future, exc)
            return waiting
        try:
            replayed = self._replay(self._app(route), command, ctx)
            if replayed is not None:
                waiting.future.set_result(replayed)
                return waiting
            waiting.prepared = self._prepare(route, command, ctx, internal_key)
        except Exception as exc:  # the future carries every failure to the caller
            _fail(waiting.future, exc)
            return waiting
        writer = self._writers[route.context]
        self._ensure_running(writer)
        writer.waiting.put(waiting)
        return waiting

    def _deadline_error(self, outcome: str) -> CommandDeadlineExceeded:
        return CommandDeadlineExceeded(
            f"the command did not complete within {self.deadline_s:g}s; {outcome}",
            retry_after_s=max(1, math.ceil(self.deadline_s / 10)),
        )

    def _start(self, writer: _Writer) -> None:
        writer.thread = threading.Thread(
            target=self._write_batches,
            args=(writer,),
            name=f"group-commit-{writer.app.context}",
            daemon=True,
        )
        writer.thread.start()

    def _ensure_running(self, writer: _Writer) -> None:
        if writer.alive() or self._closed:
            return
        with self._writers_lock:
            if not writer.alive():
                log.error(
                    "the group-commit writer had died; restarting it",
                    extra={"context": writer.app.context},
                )
                self._start(writer)

    def _route(self, command: object) -> Route:
        try:
            return self.routes[type(command)]
        except KeyError:
            raise TypeError(f"no handler for {type(command).__name__}") from None

    def _app(self, route: Route) -> ContextApplication:
        return self.apps.by_context(route.context)

    def _replay(
        self, app: ContextApplication, command: object, ctx: CommandContext
    ) -> CommandResult | None:
        if ctx.idempotency_key is None:
            return None
        outcome = _recorder(app).find_outcome(_scoped_key(ctx))
        if outcome is None:
            return None
        if outcome.fingerprint != fingerprint(command, ctx):
            raise IdempotencyKeyReused(
                f"idempotency key {ctx.idempotency_key!r} was used for a different request"
            )
        return CommandResult(outcome.aggregate_id, outcome.version, outcome.position, True)

    def _recover(self, app: ContextApplication, item: _Waiting) -> CommandResult | None:
        """This execution's own earlier save, committed although its save raised."""
        if item.internal_key is None:
            return None
        outcome = _recorder(app).find_outcome(item.internal_key)
        if outcome is None:
            return None
        return CommandResult(outcome.aggregate_id, outcome.version, outcome.position)

    def _prepare(
        self, route: Route, command: object, ctx: CommandContext, internal_key: str | None
    ) -> _Prepared:
        uow = UnitOfWork(self.apps, route.context)
        primary_id = route.handler(command, uow, ctx)
        changed = uow.changed()
        primary_version = uow.version_of(primary_id)
        key = _scoped_key(ctx) if ctx.idempotency_key is not None else internal_key
        record = None
        if key is not None and changed:
            record = IdempotencyRecord(
                key,
                fingerprint(command, ctx),
                primary_id,
                primary_version,
                tuple((a.id, a.version) for a in changed),
            )
        return _Prepared(command, ctx, primary_id, primary_version, changed, record)

    def _execute_alone(
        self, route: Route, item: _Waiting, *, maybe_saved: bool = False
    ) -> CommandResult:
        """Save one command; ``maybe_saved`` when a save of it (its batch's) raised already.

        The command's idempotency record is looked up first, so a save that committed although
        it raised is answered, not applied again; the store's failures are waited out up to the
        deadline (see the module docstring)."""
        app = self._app(route)
        conflicts = 0
        while True:
            try:
                answered = self._recover(app, item) or self._replay(app, item.command, item.ctx)
                if answered is not None:
                    return answered
                maybe_saved = False  # the store answered: nothing of this command is stored
                if item.expired():
                    raise self._deadline_error("it was not applied")
                prepared = self._prepare(route, item.command, item.ctx, item.internal_key)
                maybe_saved = True
                try:
                    recordings = _save(app, [prepared])
                except IntegrityError:
                    answered = self._recover(app, item) or self._replay(app, item.command, item.ctx)
                    if answered is not None:
                        return answered
                    maybe_saved = False
                    conflicts += 1
                    if item.ctx.expected_version is not None or conflicts == CONFLICT_RETRIES:
                        raise VersionConflict(
                            "a concurrent command changed the aggregate first; reload and retry"
                        ) from None
                    continue
            except STORE_ERRORS as error:
                self._wait_for_store(item, error, maybe_saved=maybe_saved)
                continue
            self.stats.count(1)
            self._remember_saved([prepared])
            return _result(app, prepared, recordings)

    def _wait_for_store(self, item: _Waiting, error: Exception, *, maybe_saved: bool) -> None:
        """Pause before asking the store again, or raise when the command's time is up: past its
        deadline it was not applied, unless a save of it raised and nothing could be read since
        (then the caller, who waits one more deadline for a command in the writer's hands, gets
        the unknown outcome)."""
        until = item.deadline + (self.deadline_s if maybe_saved else 0.0)
        if time.monotonic() + STORE_RETRY_PAUSE_S < until:
            time.sleep(STORE_RETRY_PAUSE_S)
            return
        if maybe_saved:
            raise self._deadline_error(
                "its outcome is unknown; retry with the same Idempotency-Key"
            ) from error
        raise _unavailable(error) from error

    def _write_batches(self, writer: _Writer) -> None:
        carried: list[_Waiting] = []
        while True:
            if carried:
                first: _Waiting | None = carried.pop(0)
            else:
                got = writer.waiting.get()
                if got is None:
                    return
                first = self._take(got)
            if first is not None:
                carried = self._write_supervised(writer, self._gather(writer, [first, *carried]))

    def _gather(self, writer: _Writer, pending: list[_Waiting]) -> list[_Waiting]:
        while len(pending) < self.max_batch:
            try:
                item = writer.waiting.get_nowait()
            except queue.Empty:
                break
            if item is None:
                writer.waiting.put(None)
                break
            taken = self._take(item)
            if taken is not None:
                pending.append(taken)
        return pending

    def _write_supervised(self, writer: _Writer, pending: list[_Waiting]) -> list[_Waiting]:
        """One batch; whatever it raises fails only its commands (those not done yet)."""
        writer.in_flight = pending
        try:
            return self._write_one_batch(writer.app, pending)
        except Exception as exc:  # supervised: only this batch fails, the writer goes on
            log.exception(
                "a group-commit batch failed outside its save",
                extra={"context": writer.app.context, "commands": len(pending)},
            )
            for item in pending:
                _fail(item.future, exc)
            return []
        except BaseException as exc:
            for item in pending:
                _fail(item.future, exc)
            raise
        finally:
            writer.in_flight = []

    def _take(self, item: _Waiting) -> _Waiting | None:
        """The item, now the writer's (no caller can cancel it any more), or None when it was
        cancelled or is past its deadline (failed so)."""
        if not item.future.set_running_or_notify_cancel():
            return None
        if item.expired():
            _fail(item.future, self._deadline_error("it was not applied"))
            return None
        return item

    def _write_one_batch(self, app: ContextApplication, pending: list[_Waiting]) -> list[_Waiting]:
        batch: list[tuple[_Waiting, _Prepared]] = []
        touched: set[UUID] = set()
        deferred: list[_Waiting] = []
        for item in pending:
            if deferred:
                deferred.append(item)  # keep arrival order behind a deferred command
                continue
            if item.expired():  # a carried command not yet in a transaction: dropped, unsaved
                _fail(item.future, self._deadline_error("it was not applied"))
                continue
            prepared = item.prepared
            if prepared is None or self._is_stale(prepared):
                try:
                    replayed = self._replay(app, item.command, item.ctx)
                    if replayed is not None:
                        _resolve(item.future, replayed)
                        continue
                    route = self._route(item.command)
                    prepared = self._prepare(route, item.command, item.ctx, item.internal_key)
                except Exception as exc:  # a failing command fails alone
                    _fail(item.future, exc)
                    continue
            keys = {p.record.key for _, p in batch if p.record}
            if prepared.touched() & touched or (prepared.record and prepared.record.key in keys):
                item.prepared = None  # its aggregate changes in this batch: prepare it afresh
                deferred.append(item)
                continue
            touched |= prepared.touched()
            batch.append((item, prepared))
        if batch:
            self._save_batch(app, batch)
        return deferred

    def _save_batch(self, app: ContextApplication, batch: list[tuple[_Waiting, _Prepared]]) -> None:
        try:
            recordings = _save(app, [p for _, p in batch])
        except Exception:  # the batch failed as a whole: retry its commands one by one
            with self.stats.lock:
                self.stats.fallbacks += 1
            for item, _ in batch:
                self._settle_alone(item)
            return
        self.stats.count(len(batch))
        self._remember_saved([p for _, p in batch])
        for item, prepared in batch:
            try:
                _resolve(item.future, _result(app, prepared, recordings))
            except Exception as exc:  # e.g. the log's head unreadable: this one fails
                _fail(item.future, exc)

    def _is_stale(self, prepared: _Prepared) -> bool:
        """True when a save since this command was prepared moved one of its aggregates on."""
        for aggregate in prepared.changed:
            base = aggregate.version - len(aggregate.pending_events)
            if self._saved_versions.get(aggregate.id, base) > base:
                return True
        return False

    def _remember_saved(self, prepared: Sequence[_Prepared]) -> None:
        for item in prepared:
            for aggregate in item.changed:
                self._saved_versions[aggregate.id] = aggregate.version
        while len(self._saved_versions) > SAVED_VERSIONS_KEPT:
            del self._saved_versions[next(iter(self._saved_versions))]

    def _settle_alone(self, item: _Waiting) -> None:
        """A command of a batch whose save raised (it may have committed all the same)."""
        try:
            route = self._route(item.command)
            _resolve(item.future, self._execute_alone(route, item, maybe_saved=True))
        except Exception as exc:  # the future carries every failure to the caller
            _fail(item.future, exc)


def _resolve(future: Future[CommandResult], result: CommandResult) -> None:
    """Set ``result`` unless the future is already done (a cancelled one is left alone)."""
    if not future.done():
        with contextlib.suppress(InvalidStateError):
            future.set_result(result)


def _fail(future: Future[CommandResult], error: BaseException) -> None:
    """Fail the future unless it is done; a store failure reaches the caller as
    ``StoreUnavailable`` (every path that fails a command so has applied nothing)."""
    if isinstance(error, STORE_ERRORS):
        unavailable = _unavailable(error)
        unavailable.__cause__ = error
        error = unavailable
    if not future.done():
        with contextlib.suppress(InvalidStateError):
            future.set_exception(error)


def _unavailable(error: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        f"the event store is unavailable ({type(error).__name__}); the command was not applied"
    )


def _recorder(app: ContextApplication) -> IdempotentRecorder:
    recorder = app.recorder
    assert isinstance(recorder, IdempotentRecorder)
    return recorder


def _scoped_key(ctx: CommandContext) -> str:
    """Keys are per actor: two clients choosing the same key never collide."""
    return f"{ctx.actor}:{ctx.idempotency_key}"


def _save(app: ContextApplication, prepared: Sequence[_Prepared]) -> list[Recording[UUID]]:
    aggregates = [a for p in prepared for a in p.changed]
    records = [p.record for p in prepared if p.record is not None]
    if not aggregates:
        return []
    return app.save(*aggregates, idempotency=records)


def _result(
    app: ContextApplication, prepared: _Prepared, recordings: Sequence[Recording[UUID]]
) -> CommandResult:
    mine = prepared.touched()
    positions = [r.notification.id for r in recordings if r.domain_event.originator_id in mine]
    if not positions:
        # The command recorded nothing (e.g. clearing an empty cart): a position at or after the
        # aggregate's last event is waited on. The batch's own last position is one (its table
        # lock orders notification ids by commit); alone, the log's head is.
        positions = [_head(app, recordings)]
    return CommandResult(prepared.primary_id, prepared.primary_version, max(positions))


def _head(app: ContextApplication, recordings: Iterable[Recording[UUID]]) -> int:
    batch = [r.notification.id for r in recordings]
    return max(batch) if batch else app.recorder.max_notification_id() or 0
