"""Downloads: record the download (free icon or entitlement), then redirect to a short-lived
presigned URL of the file in the private bucket."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import FromPath, QueryParameter

from api.commanding import command_context, run_command
from api.contract import facts
from api.controllers.deps import ContainerDep
from commands import messages as m
from commands.unit_of_work import UnitOfWork
from domain.icon import Icon, IconFile
from domain.media import MediaFormat
from infra.bootstrap import Container

Req = Request[Any, Any, Any]
EXTENSIONS = {"svg": "svg", "png": "png", "webp": "webp", "pdf": "pdf"}
MAX_INT64 = 2**63 - 1


class DownloadLink(msgspec.Struct):
    """Where the file is (also the ``Location`` of the 302) and for how long the URL works."""

    url: str
    expires_in_s: int
    format: str
    size: int | None
    size_bytes: int
    position: int


def _filename(icon: Icon, file: IconFile) -> str:
    stem = "-".join(icon.name.lower().split()) or "icon"
    suffix = f"-{file.size}" if file.size is not None else ""
    return f"{stem}{suffix}.{EXTENSIONS[file.format.value]}"


def _link(
    container: Container, icon_id: UUID, format: str, size: int | None
) -> tuple[str, IconFile]:
    icon = UnitOfWork.read(container.applications.catalog, Icon, icon_id)
    file = icon.file_for(format, size)
    url = container.private_store.presigned_get(
        file.key,
        expires_s=container.settings.download_url_ttl_s,
        filename=_filename(icon, file),
    )
    return url, file


class DownloadController(Controller):
    path = "/v1/icons"
    tags = ["downloads"]  # noqa: RUF012

    @get(
        "/{icon_id:uuid}/download",
        operation_id="downloadIcon",
        opt=facts(command=True),  # records the download
        status_code=302,
        summary="Download an icon file: records the download, then redirects (302) to a "
        "short-lived presigned URL. Free published icons' PNG, WebP and PDF for any customer; "
        "paid icons and every SVG original only with an entitlement (403 not_entitled "
        "otherwise, nothing recorded).",
    )
    async def download(
        self,
        request: Req,
        container: ContainerDep,
        icon_id: FromPath[UUID],
        format: Annotated[MediaFormat, QueryParameter(description="The file's format.")] = (
            MediaFormat.PNG
        ),
        size: Annotated[
            int | None,
            QueryParameter(
                ge=1, le=MAX_INT64, description="Raster edge in px (default: the largest)."
            ),
        ] = None,
    ) -> Response[DownloadLink]:
        ctx = command_context(request, container)
        result = await run_command(
            container, m.RecordDownload(icon_id=icon_id, format=format.value, size=size), ctx
        )
        url, file = await asyncio.to_thread(_link, container, icon_id, format.value, size)
        body = DownloadLink(
            url=url,
            expires_in_s=container.settings.download_url_ttl_s,
            format=file.format.value,
            size=file.size,
            size_bytes=file.size_bytes,
            position=result.position,
        )
        return Response(
            body,
            status_code=302,
            headers={"Location": url, "Cache-Control": "no-store"},
        )
