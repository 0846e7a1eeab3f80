"""Zip batch import, in two steps: the API's request, then the import worker's processing.

**Request** (`ZipImporter.request`, inside the HTTP request): the set is authorized, the zip's
bytes (bounded by the size limit as they are read) are stored in staging at
``imports/{import_id}.zip`` in the private bucket, and ``RequestImport`` appends
``IconImport.ImportRequested`` (status ``pending``). No zip rule is checked there: every one of
them needs the archive opened, and all of that is the worker's.

**Processing** (`ZipImporter.process`, the import worker, `pipelines.import_worker`): the staged
zip is read and checked as a whole (`pipelines.zip_import.read_batch`); a zip refused as a whole
gets ``RefuseImport`` (``IconImport.ImportRefused`` with the rule's code) and creates nothing.
Otherwise each valid manifest entry becomes ``CreateIcon`` + the same sanitise-and-store +
``RecordOriginal`` as ``PUT /v1/icons/{id}/svg``; an invalid one (missing file, SVG refused by
the policy, bad name/price/licence, wrong style) gets one reason; ``CompleteImport`` records the
report (``IconImport.ImportCompleted``). Then the staged zip is deleted.

Every step carries an idempotency key derived from the import id (``import:{id}:{index}:create``
…), so processing an import again (a redelivered event, a worker killed half-way) replays what
was done and creates nothing twice. The import's commands run as the actor who asked for it,
with the roles recorded in its request, in the request's correlation.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from uuid import UUID

from commands import messages as m
from commands.errors import AccessDenied, AggregateNotFound, AlreadyExists, IdempotencyKeyReused
from commands.handlers.common import authorize
from commands.policy import Action
from commands.results import CommandContext, CommandResult
from commands.unit_of_work import UnitOfWork
from domain.errors import DomainError
from domain.icon_import import IconImport, ImportStatus, import_id_for
from domain.icon_set import IconSet
from pipelines.errors import MediaRefused, RefusalCode, ZipRefused
from pipelines.object_store import ObjectNotFound
from pipelines.svg_ingest import SvgIngestion, original_message, with_key
from pipelines.svg_policy import sanitise_svg
from pipelines.zip_import import ManifestIcon, ZipBatch, ZipLimits, read_batch

IMPORTS_PREFIX = "imports/"
ZIP_MEDIA_TYPE = "application/zip"
IMPORT_THREADS = 8
DEFAULT_STAGED_TTL_S = 7 * 24 * 3600


def staged_zip_key(import_id: UUID) -> str:
    """Where a requested import's zip waits for the worker (deleted once it is processed)."""
    return f"{IMPORTS_PREFIX}{import_id}.zip"


@dataclass(frozen=True)
class ImportOutcome:
    """The import, the result of the command that recorded its request (or, for `run`, its
    outcome), and whether this request only found an earlier identical one."""

    report: IconImport
    result: CommandResult
    replayed: bool


def import_context(found: IconImport) -> CommandContext:
    """The context an import's commands run in: its requester, the roles recorded with the
    request, the request's correlation."""
    return CommandContext(
        actor=found.requested_by,
        roles=frozenset(found.roles),
        correlation_id=found.correlation_id,
    )


@dataclass
class ZipImporter:
    """Requests and processes zip batch imports into sets through `SvgIngestion`; entries are
    imported concurrently (commands are thread-safe and group-committed), and reported in
    manifest order. Staged zips live in the ingestion's (private) store."""

    ingestion: SvgIngestion
    limits: ZipLimits
    staged_ttl_s: int = DEFAULT_STAGED_TTL_S

    def writable_set(self, set_id: UUID, ctx: CommandContext) -> IconSet:
        """The set, if ``ctx``'s actor may import icons into it (raises otherwise, writing
        nothing): the API asks before it reads the zip's first byte."""
        icon_set = UnitOfWork.read(self.ingestion.apps.catalog, IconSet, set_id)
        authorize(ctx, Action.ICON_CREATE, "set", icon_set.owner_id)
        return icon_set

    # --- the request (API)

    def request(self, set_id: UUID, raw: bytes, ctx: CommandContext) -> ImportOutcome:
        """Stage ``raw`` and record a pending import of it into the set; a re-sent zip (same
        set, bytes and idempotency key) answers the first request's result and stores and
        appends nothing."""
        self.writable_set(set_id, ctx)
        if len(raw) > self.limits.max_bytes:
            raise ZipRefused(
                RefusalCode.ZIP_TOO_LARGE,
                f"{len(raw)} bytes exceeds the limit of {self.limits.max_bytes}",
            )
        zip_hash = hashlib.sha256(raw).hexdigest()
        request_key = ctx.idempotency_key or ""
        import_id = import_id_for(set_id, zip_hash, request_key)
        keyed = with_key(ctx, f"import:{import_id}:request")
        command = m.RequestImport(
            set_id=set_id,
            zip_hash=zip_hash,
            request_key=request_key,
            zip_key=staged_zip_key(import_id),
            size_bytes=len(raw),
        )
        existing = self.find(import_id)
        if existing is not None:
            return self._again(existing, command, keyed)
        store = self.ingestion.store
        store.put_bytes(command.zip_key, raw, content_type=ZIP_MEDIA_TYPE)
        try:
            result = self.ingestion.bus.execute(command, keyed)
        except AlreadyExists:  # an identical request recorded it meanwhile (our object is its)
            found = self.find(import_id)
            assert found is not None
            return self._again(found, command, keyed)
        except (AccessDenied, AggregateNotFound, DomainError):
            # Refused: nothing appended, so nothing stored. (A deadline or an outage leaves the
            # object: the request may have been recorded; the sweeper removes it otherwise.)
            store.delete(command.zip_key)
            raise
        found = self.find(import_id)
        assert found is not None
        return ImportOutcome(found, result, result.replayed)

    def _again(
        self, existing: IconImport, command: m.RequestImport, keyed: CommandContext
    ) -> ImportOutcome:
        """The first request's result, replayed from its idempotency key; an import recorded
        before imports had a worker has none: its id and the log's head."""
        try:
            result = self.ingestion.bus.execute(command, keyed)
        except (AlreadyExists, IdempotencyKeyReused):
            head = self.ingestion.apps.catalog.recorder.max_notification_id() or 0
            result = CommandResult(existing.id, existing.version, head, replayed=True)
        return ImportOutcome(existing, result, True)

    # --- the processing (import worker)

    def process(self, import_id: UUID) -> IconImport | None:
        """Run the pending import ``import_id`` to its report (or its refusal) and delete its
        staged zip; an import already done or refused is left as it is (its zip deleted).
        Returns the import (None if there is none). Raises only what retrying can change (a
        dependency down, a command past its deadline): the import is then still pending, and
        processing it again replays what was done."""
        found = self.find(import_id)
        if found is None:
            return None
        if found.status is ImportStatus.PENDING:
            ctx = import_context(found)
            try:
                batch = self._staged_batch(found)
            except MediaRefused as refused:
                self._refuse(found, refused, ctx)
            else:
                self._import(found, batch, ctx)
            found = self.find(import_id)
            assert found is not None
        if found.zip_key:
            self.ingestion.store.delete(found.zip_key)
        return found

    def run(self, set_id: UUID, raw: bytes, ctx: CommandContext) -> ImportOutcome:
        """Request and process at once (tools, tests): the import's outcome; a zip refused as a
        whole raises `ZipRefused` (its refusal is recorded)."""
        requested = self.request(set_id, raw, ctx)
        done = self.process(requested.report.id)
        assert done is not None
        if done.refusal is not None:
            raise ZipRefused(RefusalCode(done.refusal["code"]), done.refusal["detail"])
        head = self.ingestion.apps.catalog.recorder.max_notification_id() or 0
        return ImportOutcome(done, CommandResult(done.id, done.version, head), requested.replayed)

    def find(self, import_id: UUID) -> IconImport | None:
        """Import ``import_id``, if it was requested (read from its events: no read model)."""
        catalog = self.ingestion.apps.catalog
        if not UnitOfWork(self.ingestion.apps, "catalog").exists(import_id):
            return None
        return UnitOfWork.read(catalog, IconImport, import_id, current=True)

    def sweep_staged(self) -> int:
        """Delete every staged zip older than ``staged_ttl_s`` (one the worker never got to:
        a processed import's zip is deleted by the worker). Returns how many were deleted."""
        store = self.ingestion.store
        stale = store.keys_older_than(IMPORTS_PREFIX, self.staged_ttl_s)
        for key in stale:
            store.delete(key)
        return len(stale)

    def _refuse(self, found: IconImport, refused: MediaRefused, ctx: CommandContext) -> None:
        if refused.code == RefusalCode.IMPORT_ZIP_MISSING.value:
            # Another worker (a rebalance's previous owner) may have just finished it and
            # deleted its zip: that is no refusal.
            current = self.find(found.id)
            if current is None or current.status is not ImportStatus.PENDING:
                return
        command = m.RefuseImport(import_id=found.id, code=refused.code, detail=refused.detail)
        self.ingestion.bus.execute(command, with_key(ctx, f"import:{found.id}:refused"))

    def _staged_batch(self, found: IconImport) -> ZipBatch:
        """The staged zip, checked as a whole; raises `MediaRefused` naming the rule broken."""
        try:
            raw = self.ingestion.store.get_bytes(found.zip_key, max_bytes=self.limits.max_bytes)
        except ObjectNotFound:
            raise ZipRefused(
                RefusalCode.IMPORT_ZIP_MISSING,
                f"the staged zip is gone (staged zips are deleted after {self.staged_ttl_s} s)",
            ) from None
        if hashlib.sha256(raw).hexdigest() != found.zip_hash:
            raise ZipRefused(
                RefusalCode.IMPORT_ZIP_MISSING, "the staged zip is not the one that was sent"
            )
        return read_batch(raw, self.limits)

    def _import(self, found: IconImport, batch: ZipBatch, ctx: CommandContext) -> CommandResult:
        import_id = found.id
        icon_set = self.writable_set(found.set_id, ctx)
        rejected = [
            m.ImportRejection(
                file=name,
                code=RefusalCode.IMPORT_FILE_UNLISTED.value,
                detail="not listed in manifest.json",
            )
            for name in sorted(set(batch.files) - {icon.file for icon in batch.icons})
        ]

        def attempt(index: int) -> UUID | MediaRefused | DomainError:
            try:
                step = f"import:{import_id}:{index}"
                return self._import_one(icon_set, batch, batch.icons[index], step, ctx)
            except (MediaRefused, DomainError) as exc:
                return exc

        with ThreadPoolExecutor(IMPORT_THREADS, thread_name_prefix="import") as pool:
            outcomes = list(pool.map(attempt, range(len(batch.icons))))
        created: list[m.ImportedIcon] = []
        for entry, outcome in zip(batch.icons, outcomes, strict=True):
            if isinstance(outcome, UUID):
                created.append(m.ImportedIcon(file=entry.file, icon_id=outcome))
            else:
                code, detail = _reason(outcome)
                rejected.append(m.ImportRejection(file=entry.file, code=code, detail=detail))
        report = m.CompleteImport(
            import_id=import_id, created=tuple(created), rejected=tuple(rejected)
        )
        return self.ingestion.bus.execute(report, with_key(ctx, f"import:{import_id}:report"))

    def _import_one(
        self,
        icon_set: IconSet,
        batch: ZipBatch,
        entry: ManifestIcon,
        step: str,
        ctx: CommandContext,
    ) -> UUID:
        raw = batch.files.get(entry.file)
        if raw is None:
            raise MediaRefused(
                RefusalCode.IMPORT_FILE_MISSING, "listed in manifest.json, not in the zip"
            )
        if entry.style is not None and entry.style != icon_set.style.value:
            raise MediaRefused(
                RefusalCode.IMPORT_STYLE_MISMATCH,
                f"the manifest says style {entry.style!r}; the set's style is "
                f"{icon_set.style.value!r}",
            )
        svg = sanitise_svg(raw, self.ingestion.limits)
        create = m.CreateIcon(
            set_id=icon_set.id,
            name=entry.name,
            price=m.Money(amount_minor=entry.amount_minor, currency=entry.currency),
            licence=entry.licence,
            tags=entry.tags,
            categories=entry.categories,
        )
        bus = self.ingestion.bus
        icon_id = bus.execute(create, with_key(ctx, f"{step}:create")).aggregate_id
        self.ingestion.store_original(svg)
        original = original_message(svg)
        bus.execute(
            m.RecordOriginal(icon_id=icon_id, original=original), with_key(ctx, f"{step}:original")
        )
        return icon_id


def _reason(exc: MediaRefused | DomainError) -> tuple[str, str]:
    if isinstance(exc, MediaRefused):
        return exc.code, exc.detail
    return exc.code, exc.message
