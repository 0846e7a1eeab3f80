"""Zip batch import: each valid manifest entry fans out through the normal upload path.

A valid entry becomes ``CreateIcon`` + the same sanitise-and-store + ``RecordOriginal`` as
``PUT /v1/icons/{id}/svg``; an invalid one (missing file, SVG refused by the policy, bad
name/price/licence, wrong style) gets one reason. ``ReportImport`` then records the report
(``IconImport.ImportReported``). Every step carries an idempotency key derived from the import
id, so a retried or re-sent batch creates nothing twice, even after a crash half-way.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from uuid import UUID

from commands import messages as m
from commands.handlers.common import authorize
from commands.policy import Action
from commands.results import CommandContext, CommandResult
from commands.unit_of_work import UnitOfWork
from domain.errors import DomainError
from domain.icon_import import IconImport, import_id_for
from domain.icon_set import IconSet
from pipelines.errors import MediaRefused, RefusalCode
from pipelines.svg_ingest import SvgIngestion, original_message, with_key
from pipelines.svg_policy import sanitise_svg
from pipelines.zip_import import ManifestIcon, ZipBatch, ZipLimits, read_batch


@dataclass(frozen=True)
class ImportOutcome:
    """The import's report, the result of the command that recorded it, and whether this
    request only found the report of an earlier identical one."""

    report: IconImport
    result: CommandResult
    replayed: bool


IMPORT_THREADS = 8


@dataclass
class ZipImporter:
    """Imports zip batches into sets through `SvgIngestion`; entries are imported concurrently
    (commands are thread-safe and group-committed), and reported in manifest order."""

    ingestion: SvgIngestion
    limits: ZipLimits

    def writable_set(self, set_id: UUID, ctx: CommandContext) -> IconSet:
        """The set, if ``ctx``'s actor may import icons into it (raises otherwise, writing
        nothing): the API asks before it reads the zip's first byte."""
        icon_set = UnitOfWork.read(self.ingestion.apps.catalog, IconSet, set_id)
        authorize(ctx, Action.ICON_CREATE, "set", icon_set.owner_id)
        return icon_set

    def run(self, set_id: UUID, raw: bytes, ctx: CommandContext) -> ImportOutcome:
        """Import the zip ``raw`` into the set; raises `ZipRefused` (nothing written) if the
        zip as a whole is refused."""
        apps = self.ingestion.apps
        icon_set = self.writable_set(set_id, ctx)
        zip_hash = hashlib.sha256(raw).hexdigest()
        request_key = ctx.idempotency_key or ""
        import_id = import_id_for(set_id, zip_hash, request_key)
        existing = self.find(import_id)
        if existing is not None:
            head = apps.catalog.recorder.max_notification_id() or 0
            return ImportOutcome(existing, CommandResult(import_id, existing.version, head), True)
        batch = read_batch(raw, self.limits)
        created: list[m.ImportedIcon] = []
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
        for entry, outcome in zip(batch.icons, outcomes, strict=True):
            if isinstance(outcome, UUID):
                created.append(m.ImportedIcon(file=entry.file, icon_id=outcome))
            else:
                code, detail = _reason(outcome)
                rejected.append(m.ImportRejection(file=entry.file, code=code, detail=detail))
        report = m.ReportImport(
            set_id=set_id,
            zip_hash=zip_hash,
            request_key=request_key,
            created=tuple(created),
            rejected=tuple(rejected),
        )
        result = self.ingestion.bus.execute(report, with_key(ctx, f"import:{import_id}:report"))
        found = self.find(import_id)
        assert found is not None
        return ImportOutcome(found, result, result.replayed)

    def find(self, import_id: UUID) -> IconImport | None:
        """The report of import ``import_id``, if it was recorded."""
        catalog = self.ingestion.apps.catalog
        if not UnitOfWork(self.ingestion.apps, "catalog").exists(import_id):
            return None
        return UnitOfWork.read(catalog, IconImport, import_id)

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
