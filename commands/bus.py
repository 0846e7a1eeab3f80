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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from commands.applications import Applications, ContextApplication
from commands.errors import IdempotencyKeyReused, VersionConflict
from commands.persistence import IdempotencyRecord, IdempotentRecorder
from commands.results import CommandContext, CommandResult
from commands.unit_of_work import UnitOfWork

Handler = Callable[[Any, UnitOfWork, CommandContext], UUID]
CONFLICT_RETRIES = 3


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
    prepared: _Prepared | None = None
    future: Future[CommandResult] = field(default_factory=Future)


SAVED_VERSIONS_KEPT = 100_000


class CommandBus:
    """Executes commands; thread-safe. ``group_commit`` batches concurrent commands per table."""

    def __init__(
        self,
        apps: Applications,
        routes: dict[type, Route],
        *,
        group_commit: bool = False,
        max_batch: int = 256,
    ) -> None:
        self.apps = apps
        self.routes = routes
        self.group_commit = group_commit
        self.max_batch = max_batch
        self.stats = BusStats()
        self._saved_versions: dict[UUID, int] = {}
        self._queues: dict[str, queue.Queue[_Waiting | None]] = {}
        self._writers: list[threading.Thread] = []
        if group_commit:
            for app in apps.all():
                waiting: queue.Queue[_Waiting | None] = queue.Queue()
                self._queues[app.context] = waiting
                writer = threading.Thread(
                    target=self._write_batches,
                    args=(app, waiting),
                    name=f"group-commit-{app.context}",
                    daemon=True,
                )
                writer.start()
                self._writers.append(writer)

    def execute(self, command: object, ctx: CommandContext) -> CommandResult:
        """Run ``command`` and wait for its result (domain and command errors are raised)."""
        return self.submit(command, ctx).result()

    def submit(self, command: object, ctx: CommandContext) -> Future[CommandResult]:
        route = self._route(command)
        if not self.group_commit:
            future: Future[CommandResult] = Future()
            try:
                future.set_result(self._execute_alone(route, command, ctx))
            except Exception as exc:  # the future carries every failure to the caller
                future.set_exception(exc)
            return future
        waiting = _Waiting(command, ctx)
        try:
            replayed = self._replay(self._app(route), command, ctx)
            if replayed is not None:
                waiting.future.set_result(replayed)
                return waiting.future
            waiting.prepared = self._prepare(route, command, ctx)
        except Exception as exc:  # the future carries every failure to the caller
            waiting.future.set_exception(exc)
            return waiting.future
        self._queues[route.context].put(waiting)
        return waiting.future

    def close(self) -> None:
        for waiting in self._queues.values():
            waiting.put(None)
        for writer in self._writers:
            writer.join(timeout=10)

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
        recorder = app.recorder
        assert isinstance(recorder, IdempotentRecorder)
        outcome = recorder.find_outcome(_scoped_key(ctx))
        if outcome is None:
            return None
        if outcome.fingerprint != fingerprint(command, ctx):
            raise IdempotencyKeyReused(
                f"idempotency key {ctx.idempotency_key!r} was used for a different request"
            )
        return CommandResult(outcome.aggregate_id, outcome.version, outcome.position, True)

    def _prepare(self, route: Route, command: object, ctx: CommandContext) -> _Prepared:
        uow = UnitOfWork(self.apps, route.context)
        primary_id = route.handler(command, uow, ctx)
        changed = uow.changed()
        record = None
        if ctx.idempotency_key is not None:
            primary = next((a for a in changed if a.id == primary_id), None)
            if primary is not None:
                record = IdempotencyRecord(
                    _scoped_key(ctx), fingerprint(command, ctx), primary_id, primary.version
                )
        return _Prepared(command, ctx, primary_id, uow.version_of(primary_id), changed, record)

    def _execute_alone(self, route: Route, command: object, ctx: CommandContext) -> CommandResult:
        app = self._app(route)
        for attempt in range(CONFLICT_RETRIES):
            replayed = self._replay(app, command, ctx)
            if replayed is not None:
                return replayed
            prepared = self._prepare(route, command, ctx)
            try:
                recordings = _save(app, [prepared])
                self.stats.count(1)
                self._remember_saved([prepared])
            except IntegrityError:
                replayed = self._replay(app, command, ctx)
                if replayed is not None:
                    return replayed
                if ctx.expected_version is not None or attempt == CONFLICT_RETRIES - 1:
                    raise VersionConflict(
                        "a concurrent command changed the aggregate first; reload and retry"
                    ) from None
                continue
            return _result(app, prepared, recordings)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_batches(
        self, app: ContextApplication, waiting: queue.Queue[_Waiting | None]
    ) -> None:
        carried: list[_Waiting] = []
        while True:
            first = carried.pop(0) if carried else waiting.get()
            if first is None:
                return
            pending = [first, *carried]
            carried = []
            while len(pending) < self.max_batch:
                try:
                    item = waiting.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    waiting.put(None)
                    break
                pending.append(item)
            carried = self._write_one_batch(app, pending)

    def _write_one_batch(self, app: ContextApplication, pending: list[_Waiting]) -> list[_Waiting]:
        batch: list[tuple[_Waiting, _Prepared]] = []
        touched: set[UUID] = set()
        deferred: list[_Waiting] = []
        for item in pending:
            if deferred:
                deferred.append(item)  # keep arrival order behind a deferred command
                continue
            prepared = item.prepared
            if prepared is None or self._is_stale(prepared):
                try:
                    replayed = self._replay(app, item.command, item.ctx)
                    if replayed is not None:
                        item.future.set_result(replayed)
                        continue
                    prepared = self._prepare(self._route(item.command), item.command, item.ctx)
                except Exception as exc:  # a failing command fails alone
                    item.future.set_exception(exc)
                    continue
            keys = {p.record.key for _, p in batch if p.record}
            if prepared.touched() & touched or (prepared.record and prepared.record.key in keys):
                item.prepared = None  # its aggregate changes in this batch: prepare it afresh
                deferred.append(item)
                continue
            touched |= prepared.touched()
            batch.append((item, prepared))
        if batch:
            try:
                recordings = _save(app, [p for _, p in batch])
                self.stats.count(len(batch))
                self._remember_saved([p for _, p in batch])
            except Exception:  # the batch failed as a whole: retry its commands one by one
                with self.stats.lock:
                    self.stats.fallbacks += 1
                for item, _ in batch:
                    self._settle_alone(item)
            else:
                for item, prepared in batch:
                    item.future.set_result(_result(app, prepared, recordings))
        return deferred

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
        try:
            item.future.set_result(
                self._execute_alone(self._route(item.command), item.command, item.ctx)
            )
        except Exception as exc:  # the future carries every failure to the caller
            item.future.set_exception(exc)


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
    app: ContextApplication, prepared: _Prepared, recordings: Iterable[Recording[UUID]]
) -> CommandResult:
    mine = prepared.touched()
    positions = [r.notification.id for r in recordings if r.domain_event.originator_id in mine]
    if not positions:
        # The command recorded nothing (e.g. clearing an empty cart): the log's head is a position
        # at or after the aggregate's last event, so waiting on it still reads this state.
        positions = [app.recorder.max_notification_id() or 0]
    return CommandResult(prepared.primary_id, prepared.primary_version, max(positions))
