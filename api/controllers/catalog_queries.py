"""Public catalog reads from the OpenSearch read model (never from the aggregates).

Answers carry an ETag (a hash of the body) and ``Cache-Control: public, max-age=…``; a request
whose ``If-None-Match`` matches gets ``304`` with no body. ``min_position`` (or
``X-Min-Position``) waits until the catalog projection has applied that position.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Request, Response, get
from litestar.exceptions import ValidationException
from litestar.params import FromPath, Parameter

from api.contract import facts
from api.controllers.deps import ContainerDep
from api.freshness import (
    CATALOG,
    MinPosition,
    XMinPosition,
    read_fresh,
    wanted_position,
    watermark,
)
from commands.errors import AggregateNotFound
from projections import catalog_queries as queries
from projections.catalog_alias import CATALOG_ALIAS

Req = Request[Any, Any, Any]
PUBLIC_READ = facts(public=True, cached=True)
"""Catalog reads need no token and answer If-None-Match with 304."""
CACHE_CONTROL = "public, max-age=30, stale-while-revalidate=60"


def _etag(body: Any) -> str:
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return '"' + hashlib.blake2b(encoded, digest_size=16).hexdigest() + '"'


def _cached(request: Req, body: Any, position: int | None) -> Response[Any]:
    etag = _etag(body)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if position is not None:
        headers["X-Projection-Position"] = str(position)
    if etag in request.headers.get("if-none-match", ""):
        return Response(None, status_code=304, headers=headers)
    return Response(body, headers=headers)


async def _catalog_position(container: Any, min_position: int | None) -> int | None:
    """The catalog projection's position; with ``min_position``, wait (bounded) until it is
    reached, woken by the projection's advance notices, or raise `StaleRead`."""
    mark = watermark(container, *CATALOG)

    async def read() -> dict[str, Any] | None:
        position = await mark.position()
        return None if position is None else {"position": position}

    applied = await read_fresh(
        read,
        mark=mark,
        min_position=min_position,
        timeout_s=container.settings.read_your_writes_timeout_s,
    )
    return None if applied is None else int(applied["position"])


ListCursor = Annotated[
    str | None,
    Parameter(pattern=queries.LIST_CURSOR_PATTERN, description="A next_cursor, as it is."),
]
ListSize = Annotated[int, Parameter(ge=1, le=100, description="Documents per page.")]


def _listed(name: str, page: dict[str, Any]) -> dict[str, Any]:
    """A list page as the API answers it: the documents under ``name``, total, next_cursor."""
    return {name: page["items"], "total": page["total"], "next_cursor": page["next_cursor"]}


async def _read(query: Callable[[], Any]) -> Any:
    try:
        return await asyncio.to_thread(query)
    except queries.InvalidCursor as exc:
        raise ValidationException(
            detail=str(exc), extra=[{"key": "cursor", "source": "query", "message": str(exc)}]
        ) from exc


class IconQueries(Controller):
    """Icon reads; `api.controllers.catalog.IconController` inherits them (one controller per
    path, so Litestar registers each path's OPTIONS once)."""

    @get(
        "/search",
        operation_id="searchIcons",
        opt=PUBLIC_READ,
        summary="Search published icons: typo-tolerant, synonym-aware; filters, facets with "
        "exact counts, cursor pagination.",
    )
    async def search(  # noqa: PLR0917 - one parameter per query-string filter
        self,
        request: Req,
        container: ContainerDep,
        q: Annotated[str | None, Parameter(max_length=200)] = None,
        style: str | None = None,
        category: str | None = None,
        tag: str | None = None,
        family: UUID | None = None,
        set_id: Annotated[UUID | None, Parameter(query="set")] = None,
        licence: Literal["standard", "extended"] | None = None,
        price: Literal["free", "paid"] | None = None,
        sort: Literal["relevance", "newest", "popular"] = "relevance",
        cursor: Annotated[
            str | None,
            Parameter(pattern=queries.CURSOR_PATTERN, description="A next_cursor, as it is."),
        ] = None,
        size: Annotated[int, Parameter(ge=1, le=100)] = 20,
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[Any]:
        position = await _catalog_position(container, wanted_position(min_position, x_min_position))
        body = await _read(
            lambda: queries.search(
                container.opensearch,
                CATALOG_ALIAS,
                q=q,
                style=style,
                category=category,
                tag=tag,
                family=str(family) if family else None,
                set=str(set_id) if set_id else None,
                licence=licence,
                price=price,
                sort=sort,
                cursor=cursor,
                size=size,
            ),
        )
        return _cached(request, body, position)

    @get(
        "/suggest",
        operation_id="suggestIcons",
        opt=PUBLIC_READ,
        summary="Icon names that start with a prefix (autocomplete).",
    )
    async def suggest(  # noqa: PLR0917 - the prefix, the size and the freshness pair
        self,
        request: Req,
        container: ContainerDep,
        prefix: Annotated[str, Parameter(min_length=1, max_length=50)],
        size: Annotated[int, Parameter(ge=1, le=25)] = 10,
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[Any]:
        position = await _catalog_position(container, wanted_position(min_position, x_min_position))
        names = await _read(
            lambda: queries.suggest(container.opensearch, CATALOG_ALIAS, prefix, size)
        )
        return _cached(request, {"suggestions": names}, position)

    @get("/{icon_id:uuid}", operation_id="getIcon", opt=PUBLIC_READ, summary="One published icon.")
    async def icon(
        self,
        request: Req,
        container: ContainerDep,
        icon_id: FromPath[UUID],
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[Any]:
        position = await _catalog_position(container, wanted_position(min_position, x_min_position))
        found = await _read(
            lambda: queries.get_icon(container.opensearch, CATALOG_ALIAS, str(icon_id))
        )
        if found is None:
            raise AggregateNotFound(f"icon {icon_id} is not in the catalog")
        return _cached(request, found, position)


class FamilyQueries(Controller):
    """Family reads, inherited by `api.controllers.catalog.FamilyController`."""

    @get(
        "/",
        operation_id="listFamilies",
        opt=PUBLIC_READ,
        summary="Published families, oldest first, a page at a time (size; the answer's "
        "next_cursor is the next page's cursor, null on the last; total counts them all).",
    )
    async def families(
        self,
        request: Req,
        container: ContainerDep,
        *,
        cursor: ListCursor = None,
        size: ListSize = 100,
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[Any]:
        position = await _catalog_position(container, wanted_position(min_position, x_min_position))
        page = await _read(
            lambda: queries.list_families(
                container.opensearch, CATALOG_ALIAS, size=size, cursor=cursor
            )
        )
        return _cached(request, _listed("families", page), position)

    @get(
        "/{family_id:uuid}",
        operation_id="getFamily",
        opt=PUBLIC_READ,
        summary="One published family.",
    )
    async def family(
        self,
        request: Req,
        container: ContainerDep,
        family_id: FromPath[UUID],
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[Any]:
        position = await _catalog_position(container, wanted_position(min_position, x_min_position))
        found = await _read(
            lambda: queries.get_family(container.opensearch, CATALOG_ALIAS, str(family_id)),
        )
        if found is None:
            raise AggregateNotFound(f"family {family_id} is not in the catalog")
        return _cached(request, found, position)


class SetQueries(Controller):
    """Set reads, inherited by `api.controllers.catalog.IconSetController`."""

    @get(
        "/",
        operation_id="listSets",
        opt=PUBLIC_READ,
        summary="Published sets, optionally of one family, oldest first, a page at a time "
        "(as listFamilies pages).",
    )
    async def sets(
        self,
        request: Req,
        container: ContainerDep,
        *,
        family: UUID | None = None,
        cursor: ListCursor = None,
        size: ListSize = 100,
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[Any]:
        position = await _catalog_position(container, wanted_position(min_position, x_min_position))
        page = await _read(
            lambda: queries.list_sets(
                container.opensearch,
                CATALOG_ALIAS,
                family_id=str(family) if family else None,
                size=size,
                cursor=cursor,
            ),
        )
        return _cached(request, _listed("sets", page), position)

    @get("/{set_id:uuid}", operation_id="getSet", opt=PUBLIC_READ, summary="One published set.")
    async def icon_set(
        self,
        request: Req,
        container: ContainerDep,
        set_id: FromPath[UUID],
        min_position: MinPosition = None,
        x_min_position: XMinPosition = None,
    ) -> Response[Any]:
        position = await _catalog_position(container, wanted_position(min_position, x_min_position))
        found = await _read(
            lambda: queries.get_set(container.opensearch, CATALOG_ALIAS, str(set_id))
        )
        if found is None:
            raise AggregateNotFound(f"set {set_id} is not in the catalog")
        return _cached(request, found, position)
