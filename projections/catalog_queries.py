"""Queries of the catalog read model: query building and result shaping, nothing else.

Only visible icons are ever returned: an icon is visible when it, its set and its family are
all published. Pagination is by cursor (``search_after`` on the sort values, with the icon id
as tiebreak). A cursor is readable text that carries its search's order and sort values,
``newest~1764756000000~<icon id>``, of the form `CURSOR_PATTERN`: every string of that form is
a page the search can continue from (the API documents the pattern), so a cursor is refused
only when it is not of the form, never for what it holds.
"""

from __future__ import annotations

import re
from typing import Any, Literal

Sort = Literal["relevance", "newest", "popular"]
PriceFilter = Literal["free", "paid"]

FACET_SIZE = 100
SEARCH_FIELDS = ("name^3", "tags.text^2", "categories.text", "family_name", "set_name")
# Price bands in minor units of the icon's currency: (key, from, to) with ``to`` exclusive.
PRICE_BANDS: tuple[tuple[str, int | None, int | None], ...] = (
    ("free", None, 1),
    ("under-5", 1, 500),
    ("5-10", 500, 1000),
    ("10-plus", 1000, None),
)
SORTS: dict[str, list[dict[str, Any]]] = {
    "relevance": [{"_score": "desc"}, {"created_at": "desc"}, {"id": "asc"}],
    "newest": [{"created_at": "desc"}, {"id": "asc"}],
    "popular": [
        {"purchases": {"order": "desc", "missing": 0}},
        {"downloads": {"order": "desc", "missing": 0}},
        {"created_at": "desc"},
        {"id": "asc"},
    ],
}
FACET_FIELDS = {
    "style": "style",
    "category": "categories",
    "tag": "tags",
    "family": "family_id",
    "set": "set_id",
    "licence": "licence",
}
ICON_FIELDS = (
    "id",
    "name",
    "set_id",
    "set_name",
    "family_id",
    "family_name",
    "style",
    "tags",
    "categories",
    "licence",
    "is_free",
    "formats",
    "created_at",
    "purchases",
    "downloads",
)


class InvalidCursor(ValueError):
    """The cursor is not of the form `CURSOR_PATTERN`."""


_INTEGER = r"-?[0-9]{1,18}"
_SCORE = r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?(?:e[+-]?[0-9]{1,3})?"
_ICON_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# The sort values before the icon id, per order (see SORTS): a relevance score, then integers
# (epoch milliseconds of created_at, purchase and download counts).
CURSOR_VALUES: dict[str, tuple[str, ...]] = {
    "relevance": (_SCORE, _INTEGER),
    "newest": (_INTEGER,),
    "popular": (_INTEGER, _INTEGER, _INTEGER),
}
CURSOR_PATTERN = (
    "^(?:"
    + "|".join(
        f"{sort}" + "".join(f"~{value}" for value in values)
        for sort, values in CURSOR_VALUES.items()
    )
    + f")~{_ICON_ID}(?![\\s\\S])"
)
"""Every cursor: its order, its sort values and the icon id, joined by ``~``. The lookahead
ends the string in Python and ECMA-262 alike (Python's ``$`` allows a final newline)."""
_CURSOR = re.compile(CURSOR_PATTERN)

LIST_SORT: list[dict[str, Any]] = [{"created_at": "asc"}, {"id": "asc"}]
LIST_CURSOR_PATTERN = f"^{_INTEGER}~{_ICON_ID}(?![\\s\\S])"
"""A family or set list's cursor: the last document's created_at (epoch milliseconds) and id."""
_LIST_CURSOR = re.compile(LIST_CURSOR_PATTERN)


def visible_icon_filters() -> list[dict[str, Any]]:
    return [
        {"term": {"kind": "icon"}},
        {"term": {"status": "published"}},
        {"term": {"set_status": "published"}},
        {"term": {"family_status": "published"}},
    ]


def encode_cursor(sort: str, values: list[Any]) -> str:
    """The cursor after a hit of a search in ``sort`` order whose sort values are ``values``."""
    *before, icon_id = values
    shown = [repr(float(before[0])) if sort == "relevance" else str(int(before[0]))]
    shown += [str(int(value)) for value in before[1:]]
    return "~".join([sort, *shown, str(icon_id)])


def decode_cursor(cursor: str) -> tuple[str, list[Any]]:
    """The order and the ``search_after`` values of ``cursor``."""
    if not _CURSOR.search(cursor):
        raise InvalidCursor(
            f"invalid cursor {cursor!r}: pass a next_cursor a search answered as it is"
        )
    sort, *values, icon_id = cursor.strip().split("~")
    numbers: list[Any] = [float(values[0]) if sort == "relevance" else int(values[0])]
    numbers += [int(value) for value in values[1:]]
    return sort, [*numbers, icon_id]


def shape_icon(source: dict[str, Any]) -> dict[str, Any]:
    """An icon document as the API returns it."""
    shaped = {name: source.get(name) for name in ICON_FIELDS}
    shaped["price"] = {
        "amount_minor": source.get("price_minor"),
        "currency": source.get("currency"),
    }
    shaped["purchases"] = shaped["purchases"] or 0
    shaped["downloads"] = shaped["downloads"] or 0
    return shaped


def shape_set(source: dict[str, Any]) -> dict[str, Any]:
    bundle = source.get("bundle_price_minor")
    return {
        "id": source.get("id"),
        "name": source.get("set_name"),
        "family_id": source.get("family_id"),
        "style": source.get("style"),
        "bundle_price": None
        if bundle is None
        else {"amount_minor": bundle, "currency": source.get("bundle_currency")},
        "created_at": source.get("created_at"),
    }


def shape_family(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": source.get("id"),
        "name": source.get("family_name"),
        "description": source.get("description"),
        "categories": source.get("categories") or [],
        "tags": source.get("tags") or [],
        "created_at": source.get("created_at"),
    }


def _text_query(q: str) -> dict[str, Any]:
    """Typo-tolerant match (plain analysis) or synonym-aware match (the search analyzer)."""
    return {
        "bool": {
            "should": [
                {
                    "multi_match": {
                        "query": q,
                        "fields": list(SEARCH_FIELDS),
                        "fuzziness": "AUTO",
                        "analyzer": "catalog_text",
                    }
                },
                {
                    "multi_match": {
                        "query": q,
                        "fields": list(SEARCH_FIELDS),
                        "analyzer": "catalog_search",
                        "boost": 2,
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


def _filters(
    *,
    style: str | None,
    category: str | None,
    tag: str | None,
    family: str | None,
    set_id: str | None,
    licence: str | None,
    price: str | None,
) -> list[dict[str, Any]]:
    filters = visible_icon_filters()
    for field, value in (
        ("style", style),
        ("categories", category),
        ("tags", tag),
        ("family_id", family),
        ("set_id", set_id),
        ("licence", licence),
    ):
        if value is not None:
            filters.append({"term": {field: value}})
    if price is not None:
        if price not in ("free", "paid"):
            raise ValueError(f"price must be 'free' or 'paid', not {price!r}")
        filters.append({"term": {"is_free": price == "free"}})
    return filters


def _aggregations() -> dict[str, Any]:
    aggs: dict[str, Any] = {
        name: {"terms": {"field": field, "size": FACET_SIZE}}
        for name, field in FACET_FIELDS.items()
    }
    aggs["price"] = {
        "filters": {
            "filters": {"free": {"term": {"is_free": True}}, "paid": {"term": {"is_free": False}}}
        }
    }
    ranges: list[dict[str, Any]] = []
    for key, low, high in PRICE_BANDS:
        band: dict[str, Any] = {"key": key}
        if low is not None:
            band["from"] = low
        if high is not None:
            band["to"] = high
        ranges.append(band)
    aggs["price_band"] = {"range": {"field": "price_minor", "ranges": ranges}}
    return aggs


def _facets(aggs: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    """The facets of a search; ``aggs`` is None when there is no catalog index yet, whose
    facets are those of an empty index: no terms, and zero for every price and band."""
    if aggs is None:
        facets: dict[str, dict[str, int]] = {name: {} for name in FACET_FIELDS}
        facets["price"] = {"free": 0, "paid": 0}
        facets["price_band"] = {key: 0 for key, _, _ in PRICE_BANDS}
        return facets
    facets = {
        name: {str(b["key"]): int(b["doc_count"]) for b in aggs[name]["buckets"]}
        for name in FACET_FIELDS
    }
    facets["price"] = {k: int(v["doc_count"]) for k, v in aggs["price"]["buckets"].items()}
    facets["price_band"] = {
        str(b["key"]): int(b["doc_count"]) for b in aggs["price_band"]["buckets"]
    }
    return facets


def _search(client: Any, index: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
    """``client.search`` over a catalog that may not exist yet: the projection creates the
    index when it first runs, and until then the catalog is empty, not an error."""
    params = {"ignore_unavailable": "true", "allow_no_indices": "true", **params}
    response: dict[str, Any] = client.search(index=index, body=body, params=params)
    return response


def search(
    client: Any,
    index: str,
    *,
    q: str | None = None,
    style: str | None = None,
    category: str | None = None,
    tag: str | None = None,
    family: str | None = None,
    set: str | None = None,
    licence: str | None = None,
    price: str | None = None,
    sort: str = "relevance",
    cursor: str | None = None,
    size: int = 20,
) -> dict[str, Any]:
    after: list[Any] | None = None
    if cursor is not None:  # a cursor continues the search it came from, in its order
        sort, after = decode_cursor(cursor)
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {sorted(SORTS)}, not {sort!r}")
    order = SORTS[sort]
    query: dict[str, Any] = {
        "bool": {
            "filter": _filters(
                style=style,
                category=category,
                tag=tag,
                family=family,
                set_id=set,
                licence=licence,
                price=price,
            )
        }
    }
    if q is not None and q.strip():
        query["bool"]["must"] = [_text_query(q.strip())]
    body: dict[str, Any] = {
        "query": query,
        "sort": order,
        "size": size,
        "track_total_hits": True,
        "aggs": _aggregations(),
    }
    if after is not None:
        body["search_after"] = after
    # The shard request cache holds whole responses until the next refresh that changes the
    # index, so a repeated search between catalog changes skips the query and the facets.
    response = _search(client, index, body, request_cache="true")
    hits = response["hits"]["hits"]
    next_cursor = encode_cursor(sort, hits[-1]["sort"]) if len(hits) == size and hits else None
    return {
        "hits": [shape_icon(hit["_source"]) for hit in hits],
        "facets": _facets(response.get("aggregations")),
        "total": int(response["hits"]["total"]["value"]),
        "next_cursor": next_cursor,
    }


def suggest(client: Any, index: str, prefix: str, size: int = 10) -> list[str]:
    """Distinct names of visible icons with a word starting with ``prefix``, best first."""
    if not prefix.strip():
        return []
    body = {
        "size": size,
        "_source": ["name"],
        "query": {
            "bool": {
                "filter": visible_icon_filters(),
                "must": [{"match": {"name.autocomplete": {"query": prefix, "operator": "and"}}}],
            }
        },
        "collapse": {"field": "name.keyword"},
        "sort": [{"_score": "desc"}, {"name.keyword": "asc"}],
    }
    response = _search(client, index, body)
    return [str(hit["_source"]["name"]) for hit in response["hits"]["hits"]]


def _first(client: Any, index: str, filters: list[dict[str, Any]]) -> dict[str, Any] | None:
    response = _search(client, index, {"size": 1, "query": {"bool": {"filter": filters}}})
    hits = response["hits"]["hits"]
    return dict(hits[0]["_source"]) if hits else None


def get_icon(client: Any, index: str, icon_id: str) -> dict[str, Any] | None:
    source = _first(client, index, [*visible_icon_filters(), {"term": {"id": icon_id}}])
    return None if source is None else shape_icon(source)


def get_set(client: Any, index: str, set_id: str) -> dict[str, Any] | None:
    filters = [
        {"term": {"kind": "set"}},
        {"term": {"set_status": "published"}},
        {"term": {"id": set_id}},
    ]
    source = _first(client, index, filters)
    return None if source is None else shape_set(source)


def get_family(client: Any, index: str, family_id: str) -> dict[str, Any] | None:
    filters = [
        {"term": {"kind": "family"}},
        {"term": {"family_status": "published"}},
        {"term": {"id": family_id}},
    ]
    source = _first(client, index, filters)
    return None if source is None else shape_family(source)


def decode_list_cursor(cursor: str) -> list[Any]:
    """The ``search_after`` values of a family or set list's ``cursor``."""
    if not _LIST_CURSOR.search(cursor):
        raise InvalidCursor(
            f"invalid cursor {cursor!r}: pass a next_cursor a list answered as it is"
        )
    created, doc_id = cursor.split("~")
    return [int(created), doc_id]


def _list(
    client: Any,
    index: str,
    filters: list[dict[str, Any]],
    shape: Any,
    *,
    size: int,
    cursor: str | None,
) -> dict[str, Any]:
    """One page of documents matching ``filters``, oldest first (id as tiebreak): the
    documents shaped, the count of all that match, and the cursor of the next page (None on
    the last)."""
    body: dict[str, Any] = {
        "size": size,
        "query": {"bool": {"filter": filters}},
        "sort": LIST_SORT,
        "track_total_hits": True,
    }
    if cursor is not None:
        body["search_after"] = decode_list_cursor(cursor)
    response = _search(client, index, body)
    hits = response["hits"]["hits"]
    last = hits[-1]["sort"] if len(hits) == size and hits else None
    return {
        "items": [shape(hit["_source"]) for hit in hits],
        "total": int(response["hits"]["total"]["value"]),
        "next_cursor": None if last is None else f"{int(last[0])}~{last[1]}",
    }


def list_families(
    client: Any, index: str, *, size: int = 100, cursor: str | None = None
) -> dict[str, Any]:
    filters = [{"term": {"kind": "family"}}, {"term": {"family_status": "published"}}]
    return _list(client, index, filters, shape_family, size=size, cursor=cursor)


def list_sets(
    client: Any,
    index: str,
    family_id: str | None = None,
    *,
    size: int = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {"term": {"kind": "set"}},
        {"term": {"set_status": "published"}},
    ]
    if family_id is not None:
        filters.append({"term": {"family_id": family_id}})
    return _list(client, index, filters, shape_set, size=size, cursor=cursor)
