"""Media ingestion: SVG uploads (direct and presigned) and zip batch imports; an icon's
media as its owner sees them (render state, including the media workers' refusal).

Refusals are 422 problems whose ``code`` names the rule broken (docs/media.md); a refused upload
stores nothing and appends nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import ResponseHeader, UploadFile
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from api.commanding import command_context, result_headers
from api.contract import facts
from api.controllers.deps import ContainerDep
from commands.errors import AggregateNotFound
from commands.handlers.common import authorize
from commands.policy import Action
from domain.icon_import import IconImport, ImportStatus
from pipelines.errors import MediaRefused, RefusalCode
from pipelines.import_batch import ImportOutcome
from pipelines.svg_ingest import StoredSvg
from pipelines.zip_import import MANIFEST_SCHEMA_PATH
from projections.catalog_alias import CATALOG_ALIAS
from projections.catalog_media import icon_media, render_refusals

Req = Request[Any, Any, Any]
SVG_TYPES = frozenset({"image/svg+xml"})
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})
MULTIPART = "multipart/form-data"
# The transport cap; the policy limits (settings svg_max_bytes, zip_max_bytes) answer 422 below it.
MAX_SVG_BODY = 16 * 1024 * 1024
MAX_ZIP_BODY = 256 * 1024 * 1024


class SvgAccepted(msgspec.Struct):
    """The recorded original: pass ``position`` as ``min_position`` to read your own write."""

    id: str
    version: int
    position: int
    key: str
    content_hash: str
    size_bytes: int
    width: int
    height: int


class UploadTicket(msgspec.Struct):
    """POST a multipart form to ``url`` within ``expires_in_s``: every one of ``fields``, then
    the SVG (at most ``max_bytes``, ``Content-Type: image/svg+xml``) as the ``file`` part; then
    POST ``complete_url``. The object store refuses a larger or differently typed file."""

    upload_id: str
    url: str
    method: str
    fields: dict[str, str]
    content_type: str
    max_bytes: int
    expires_in_s: int
    complete_url: str


class ImportedIconOut(msgspec.Struct):
    file: str
    icon_id: str


class ImportRejectionOut(msgspec.Struct):
    file: str
    code: str
    detail: str


class ImportRenderRefusalOut(msgspec.Struct):
    """A created icon whose original the media workers refused to render (quarantined)."""

    file: str
    icon_id: str
    code: str
    detail: str


class ImportRefusalOut(msgspec.Struct):
    """Why a zip was refused as a whole: the rule's ``code`` (docs/media.md) and a detail."""

    code: str
    detail: str


class ImportAccepted(msgspec.Struct):
    """A requested zip batch import, ``status`` ``pending``: the import worker processes it;
    read it at ``GET /v1/imports/{id}`` (the ``Location``). ``position`` is the request's
    event."""

    id: str
    set_id: str
    status: Literal["pending"]
    zip_hash: str
    size_bytes: int
    version: int
    position: int


class ImportReport(msgspec.Struct):
    """A zip batch import: ``status`` ``pending`` (not processed yet: no report), ``done`` (the
    icons it created, one reason per refused file, and the created icons whose rendering was
    refused since, ``render_refused``, from the catalog read model: it fills in as the media
    workers get to them) or ``refused`` (the zip was refused as a whole: ``refusal`` has the
    rule's code; nothing was created)."""

    id: str
    set_id: str
    zip_hash: str
    version: int
    position: int
    status: Literal["pending", "done", "refused"]
    created: list[ImportedIconOut]
    rejected: list[ImportRejectionOut]
    render_refused: list[ImportRenderRefusalOut]
    refusal: ImportRefusalOut | None


class IconRenderOut(msgspec.Struct):
    """``state``: ``none`` (no original yet), ``pending``, ``rendered`` or ``refused``; a
    refusal has its ``code`` (render_timeout, render_failed, render_crashed), ``detail``, the
    refused original's ``source_hash`` and the ``renderer_version``."""

    state: str
    code: str | None
    detail: str | None
    source_hash: str | None
    renderer_version: str | None


class IconMediaOut(msgspec.Struct):
    """An icon's media as its owner sees them, whatever its publication status."""

    id: str
    set_id: str
    status: str
    formats: list[str]
    render: IconRenderOut


def _media_type(request: Req) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


# A multipart form's boundaries and part headers around the file, allowed on top of the limit.
MULTIPART_SLACK = 64 * 1024


def _too_large(code: RefusalCode, limit: int) -> MediaRefused:
    return MediaRefused(code, f"the upload is larger than {limit} bytes")


async def _body(
    request: Req, accepted: frozenset[str], *, limit: int, too_large: RefusalCode
) -> bytes:
    """The raw body of an ``accepted`` type, or the ``file`` part of a multipart form, read
    only up to ``limit`` bytes: a larger declared Content-Length is refused before anything is
    read, and a body that grows past it while streaming is refused as soon as it does (the
    ``too_large`` refusal, as the policy check would give)."""
    media_type = _media_type(request)
    allowed = limit + (MULTIPART_SLACK if media_type == MULTIPART else 0)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > allowed:
        raise _too_large(too_large, limit)
    if media_type in accepted:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > allowed:
                raise _too_large(too_large, limit)
            chunks.append(chunk)
        return b"".join(chunks)
    if media_type == MULTIPART:
        form = await request.form()
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise MediaRefused(RefusalCode.UPLOAD_MISSING, "the form has no 'file' part")
        return await part.read(allowed + 1)
    raise HTTPException(
        status_code=415,
        detail=f"send {' or '.join(sorted(accepted))} or {MULTIPART} with a 'file' part",
    )


def _accepted(stored: StoredSvg, status_code: int) -> Response[SvgAccepted]:
    result, svg = stored.result, stored.svg
    return Response(
        SvgAccepted(
            id=str(result.aggregate_id),
            version=result.version,
            position=result.position,
            key=svg.key,
            content_hash=svg.content_hash,
            size_bytes=svg.size_bytes,
            width=svg.width,
            height=svg.height,
        ),
        status_code=status_code,
        headers=result_headers(result),
    )


_STATUSES: dict[ImportStatus, Literal["pending", "done", "refused"]] = {
    ImportStatus.PENDING: "pending",
    ImportStatus.DONE: "done",
    ImportStatus.REFUSED: "refused",
}


def _report(
    report: IconImport, position: int, refused: dict[str, dict[str, Any]] | None = None
) -> ImportReport:
    refused = refused or {}
    refusal = report.refusal
    return ImportReport(
        id=str(report.id),
        set_id=str(report.set_id),
        zip_hash=report.zip_hash,
        version=report.version,
        position=position,
        status=_STATUSES[report.status],
        created=[ImportedIconOut(item["file"], item["icon_id"]) for item in report.created],
        rejected=[
            ImportRejectionOut(item["file"], item["code"], item["detail"])
            for item in report.rejected
        ],
        render_refused=[
            ImportRenderRefusalOut(
                item["file"],
                item["icon_id"],
                refused[item["icon_id"]]["code"],
                refused[item["icon_id"]]["detail"],
            )
            for item in report.created
            if item["icon_id"] in refused
        ],
        refusal=None if refusal is None else ImportRefusalOut(refusal["code"], refusal["detail"]),
    )


def _render_refusals(container: Any, report: IconImport) -> dict[str, dict[str, Any]]:
    ids = [item["icon_id"] for item in report.created]
    found: dict[str, dict[str, Any]] = render_refusals(container.opensearch, CATALOG_ALIAS, ids)
    return found


class IconMediaController(Controller):
    path = "/v1/icons"
    tags = ["media"]  # noqa: RUF012

    @put(
        "/{icon_id:uuid}/svg",
        operation_id="uploadIconSvg",
        opt=facts(upload=sorted(SVG_TYPES)),
        status_code=202,
        summary="Upload an icon's SVG (owner only).",
        description=(
            "Body: image/svg+xml, or multipart/form-data with a 'file' part. The SVG is "
            "sanitised (docs/media.md), stored at originals/{sha256}.svg in the private bucket, "
            "and recorded: Icon.OriginalRecorded on the first upload, Icon.SvgRevised later. "
            "A refused SVG is a 422 whose code names the rule; nothing is stored or appended."
        ),
        request_max_body_size=MAX_SVG_BODY,
    )
    async def upload(
        self, request: Req, container: ContainerDep, icon_id: FromPath[UUID]
    ) -> Response[SvgAccepted]:
        ctx = command_context(request, container)
        ingestion = container.svg_ingestion
        await asyncio.to_thread(ingestion.editable_icon, icon_id, ctx)  # before any byte is read
        raw = await _body(
            request,
            SVG_TYPES,
            limit=ingestion.limits.max_bytes,
            too_large=RefusalCode.SVG_TOO_LARGE,
        )
        stored = await asyncio.to_thread(ingestion.upload, icon_id, raw, ctx)
        return _accepted(stored, 202)

    @post(
        "/{icon_id:uuid}/svg/uploads",
        operation_id="createIconSvgUpload",
        status_code=201,
        summary="Get a presigned URL to upload a large SVG (owner only).",
        description=(
            "Returns a short-lived presigned form upload (POST url with fields, then the file) "
            "to a private staging key, limited to the SVG size limit; then POST complete_url to "
            "sanitise and record it exactly like PUT /svg. A staged file never completed is "
            "deleted after the URL expires."
        ),
    )
    async def create_upload(
        self, request: Req, container: ContainerDep, icon_id: FromPath[UUID]
    ) -> UploadTicket:
        ctx = command_context(request, container)
        ticket = await asyncio.to_thread(container.svg_ingestion.presign, icon_id, ctx)
        return UploadTicket(
            upload_id=ticket.upload_id,
            url=ticket.url,
            method="POST",
            fields=ticket.fields,
            content_type=ticket.content_type,
            max_bytes=ticket.max_bytes,
            expires_in_s=ticket.expires_in_s,
            complete_url=f"/v1/icons/{icon_id}/svg/uploads/{ticket.upload_id}/complete",
        )

    @post(
        "/{icon_id:uuid}/svg/uploads/{upload_id:str}/complete",
        operation_id="completeIconSvgUpload",
        status_code=202,
        summary="Sanitise and record a presigned upload (owner only).",
        description="The staged object is read, sanitised and deleted; the result is as PUT /svg.",
    )
    async def complete_upload(
        self,
        request: Req,
        container: ContainerDep,
        icon_id: FromPath[UUID],
        upload_id: FromPath[str],
    ) -> Response[SvgAccepted]:
        ctx = command_context(request, container)
        stored = await asyncio.to_thread(container.svg_ingestion.complete, icon_id, upload_id, ctx)
        return _accepted(stored, 202)

    @get(
        "/{icon_id:uuid}/media",
        operation_id="getIconMedia",
        summary="An icon's media as its owner sees them (owner only): formats and render state.",
        description=(
            "Whatever the icon's publication status, from the catalog read model: its formats and "
            "its render state: none (no original yet), pending, rendered, or refused with the "
            "media workers' refusal (Icon.RenderRefused: render_timeout, render_failed or "
            "render_crashed, and a detail). A refused original is not rendered again: upload a "
            "revised SVG."
        ),
    )
    async def media(
        self, request: Req, container: ContainerDep, icon_id: FromPath[UUID]
    ) -> Response[IconMediaOut]:
        ctx = command_context(request, container)
        found = await asyncio.to_thread(
            icon_media, container.opensearch, CATALOG_ALIAS, str(icon_id)
        )
        if found is None:
            raise AggregateNotFound(f"icon {icon_id} is not in the catalog")
        authorize(ctx, Action.ICON_UPDATE, "icon", found["owner_id"])
        body = IconMediaOut(
            id=str(found["id"]),
            set_id=str(found["set_id"]),
            status=str(found["status"]),
            formats=list(found["formats"]),
            render=IconRenderOut(**found["render"]),
        )
        return Response(body, headers={"Cache-Control": "private, no-store"})


class ImportController(Controller):
    path = "/v1"
    tags = ["media"]  # noqa: RUF012

    @post(
        "/sets/{set_id:uuid}/imports",
        operation_id="importIconZip",
        opt=facts(upload=sorted(ZIP_TYPES), creates="import"),
        status_code=202,
        summary="Request the import of a zip batch of SVGs with a manifest.json into a set "
        "(owner only).",
        description=(
            "Body: application/zip, or multipart/form-data with a 'file' part, at most "
            "ICONMARKET_ZIP_MAX_BYTES (a larger Content-Length or body is a 422 zip_too_large "
            "before or while it is read, after the owner check). The zip is stored in staging "
            "and the import recorded as pending (IconImport.ImportRequested): 202 with the "
            "import's id, status 'pending' and the Location GET /v1/imports/{id}, where the "
            "import worker's report appears. The manifest follows "
            "/v1/schemas/import-manifest.json. Valid entries become icons with their original "
            "recorded; invalid ones get one reason each in the report. A zip refused as a whole "
            "(not a zip, bomb, traversal, symlink, bad manifest...) is an import with status "
            "'refused' and the rule's code; nothing is created. A re-sent zip (same bytes and "
            "Idempotency-Key) answers the first answer (Idempotent-Replayed: true) and stores "
            "and creates nothing."
        ),
        request_max_body_size=MAX_ZIP_BODY,
        response_headers=[
            ResponseHeader(
                name="Location",
                description="The import: GET it for its status and report.",
                documentation_only=True,
            )
        ],
    )
    async def import_zip(
        self, request: Req, container: ContainerDep, set_id: FromPath[UUID]
    ) -> Response[ImportAccepted]:
        ctx = command_context(request, container)
        importer = container.zip_importer
        await asyncio.to_thread(importer.writable_set, set_id, ctx)  # before any byte is read
        raw = await _body(
            request, ZIP_TYPES, limit=importer.limits.max_bytes, too_large=RefusalCode.ZIP_TOO_LARGE
        )
        outcome: ImportOutcome = await asyncio.to_thread(importer.request, set_id, raw, ctx)
        requested, result = outcome.report, outcome.result
        return Response(
            ImportAccepted(
                id=str(requested.id),
                set_id=str(requested.set_id),
                status="pending",
                zip_hash=requested.zip_hash,
                size_bytes=len(raw),
                version=1,
                position=result.position,
            ),
            status_code=202,
            headers={
                "Location": f"/v1/imports/{requested.id}",
                "ETag": '"1"',
                "Idempotent-Replayed": "true" if outcome.replayed else "false",
            },
        )

    @get(
        "/imports/{import_id:uuid}",
        operation_id="getImport",
        summary="A zip batch import: pending, or its report (the set's owner only).",
        description=(
            "Read from the import's own events (no read model): status 'pending' (requested, "
            "not processed by the import worker yet: no report), 'done' (IconImport."
            "ImportCompleted: created and rejected, plus render_refused from the catalog read "
            "model) or 'refused' (IconImport.ImportRefused: the zip broke a whole-zip rule, "
            "refusal.code names it; nothing was created). A report is written once and never "
            "changes."
        ),
    )
    async def get_import(
        self, request: Req, container: ContainerDep, import_id: FromPath[UUID]
    ) -> ImportReport:
        ctx = command_context(request, container)

        def read() -> IconImport:
            found = container.zip_importer.find(import_id)
            if found is None:
                raise AggregateNotFound(f"import {import_id} does not exist")
            authorize(ctx, Action.IMPORT_READ, "import", found.owner_id)
            return found

        report = await asyncio.to_thread(read)
        head = container.applications.catalog.recorder.max_notification_id() or 0
        refused = (
            await asyncio.to_thread(_render_refusals, container, report) if report.created else {}
        )
        return _report(report, head, refused)

    @get(
        "/schemas/import-manifest.json",
        operation_id="getImportManifestSchema",
        opt=facts(public=True),
        summary="The JSON Schema of a zip batch's manifest.json.",
        media_type="application/schema+json",
    )
    async def manifest_schema(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(MANIFEST_SCHEMA_PATH.read_text())
        return loaded
