"""The catalog read model on real OpenSearch: typo tolerance, autocomplete, synonyms, exact
facets, visibility, order- and redelivery-independent documents, cursor pagination."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opensearchpy import OpenSearch

from infra.settings import Settings
from projections import catalog_queries as queries
from projections.catalog import CatalogWrite, apply
from projections.catalog_view import OpenSearchCatalogView, create_index
from stream.envelope import Envelope, event_id_for


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"catalog-test:{name}"))


F1, F2 = _uid("family-essentials"), _uid("family-drafts")
S1, S2, S3 = _uid("set-line"), _uid("set-solid"), _uid("set-hidden")
USD = "USD"


class Story:
    """Hand-made envelopes, per aggregate in version order; positions follow ``build`` order."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self._versions: dict[str, int] = {}

    def add(self, event_type: str, aggregate_id: str, data: dict[str, Any]) -> None:
        version = self._versions.get(aggregate_id, 0) + 1
        self._versions[aggregate_id] = version
        position = len(self.events) + 1
        self.events.append(
            Envelope(
                event_id=event_id_for(aggregate_id, version),
                type=event_type,
                schema_version=1,
                context="catalog",
                aggregate_type=event_type.split(".", 1)[0],
                aggregate_id=aggregate_id,
                aggregate_version=version,
                position=position,
                occurred_at=f"2026-01-01T00:00:{position:02d}Z",
                actor="contributor-1",
                correlation_id=f"corr-{position}",
                causation_id=None,
                data=data,
            )
        )

    def icon(
        self,
        name: str,
        set_id: str,
        family_id: str,
        *,
        tags: Sequence[str],
        categories: Sequence[str],
        price: int,
        licence: str = "standard",
        publish: bool = True,
    ) -> str:
        icon_id = _uid(f"icon-{name}-{set_id}")
        self.add(
            "Icon.Created",
            icon_id,
            {
                "set_id": set_id,
                "family_id": family_id,
                "owner_id": "contributor-1",
                "name": name,
                "tags": list(tags),
                "categories": list(categories),
                "price": {"amount_minor": price, "currency": USD},
                "licence": licence,
            },
        )
        content_hash = f"sha256-{name}"
        original = {
            "key": f"o/{content_hash}.svg",
            "content_hash": content_hash,
            "size_bytes": 300,
            "width": 24,
            "height": 24,
        }
        self.add("Icon.OriginalRecorded", icon_id, {"original": original})
        items = [
            {"kind": kind, "size": 64, "key": f"d/{name}.{kind}", "size_bytes": 900}
            for kind in ("png", "webp")
        ]
        self.add(
            "Icon.DerivativesRecorded",
            icon_id,
            {"source_hash": content_hash, "renderer_version": "r1", "items": items},
        )
        if publish:
            self.add("Icon.Published", icon_id, {})
        return icon_id


def _family(story: Story, family_id: str, name: str) -> None:
    story.add(
        "Family.Created",
        family_id,
        {
            "owner_id": "contributor-1",
            "name": name,
            "description": f"{name} icons",
            "categories": ["ui"],
            "tags": ["basic"],
        },
    )


def _set(story: Story, set_id: str, family_id: str, name: str, style: str) -> None:
    story.add(
        "IconSet.Created",
        set_id,
        {
            "family_id": family_id,
            "owner_id": "contributor-1",
            "name": name,
            "style": style,
            "bundle_price": None,
        },
    )


def build_story() -> tuple[Story, dict[str, str]]:
    story = Story()
    _family(story, F1, "Essentials")
    _family(story, F2, "Drafts")
    _set(story, S1, F1, "Essentials Line", "outline")
    _set(story, S2, F1, "Essentials Solid", "solid")
    _set(story, S3, F2, "Hidden Flat", "flat")
    ids = {
        "calendar": story.icon("calendar", S1, F1, tags=["date"], categories=["time"], price=0),
        "trash": story.icon("trash", S1, F1, tags=["remove"], categories=["ui"], price=300),
        "arrow-left": story.icon(
            "arrow-left", S1, F1, tags=["direction"], categories=["navigation"], price=0
        ),
        "arrow-right": story.icon(
            "arrow-right",
            S1,
            F1,
            tags=["direction"],
            categories=["navigation"],
            price=1200,
            licence="extended",
        ),
        "home": story.icon("home", S1, F1, tags=["building"], categories=["navigation"], price=250),
        "arrow-up": story.icon(
            "arrow-up",
            S1,
            F1,
            tags=["direction"],
            categories=["navigation"],
            price=0,
            publish=False,
        ),
        "arrow-down": story.icon(
            "arrow-down", S2, F1, tags=["direction"], categories=["navigation"], price=0
        ),
        "arrow-back": story.icon(
            "arrow-back", S3, F2, tags=["direction"], categories=["navigation"], price=0
        ),
    }
    story.add("Icon.PriceChanged", ids["trash"], {"price": {"amount_minor": 500, "currency": USD}})
    story.add("IconSet.StyleChanged", S1, {"style": "line"})
    story.add("IconSet.Published", S1, {})
    story.add("IconSet.Published", S3, {})
    story.add("Family.Published", F1, {})
    return story, ids


VISIBLE = ("calendar", "trash", "arrow-left", "arrow-right", "home")


def _writes(events: Sequence[Envelope]) -> list[CatalogWrite]:
    return [w for e in events for w in apply(e)]


def _reversed_by_aggregate(events: Sequence[Envelope]) -> list[Envelope]:
    """Aggregates in reverse order of first appearance, each one's own events in order."""
    by_aggregate: dict[str, list[Envelope]] = {}
    for event in events:
        by_aggregate.setdefault(event.aggregate_id, []).append(event)
    return [e for group in reversed(list(by_aggregate.values())) for e in group]


@pytest.fixture(scope="module")
def client(settings: Settings) -> OpenSearch:
    return OpenSearch(hosts=[settings.opensearch_url], timeout=30)


@pytest.fixture
def index(client: OpenSearch) -> Iterator[str]:
    name = f"test-catalog-{uuid.uuid4().hex[:10]}"
    create_index(client, name)
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def _load(client: OpenSearch, index: str, events: Sequence[Envelope], batch: int = 1) -> None:
    view = OpenSearchCatalogView(client, index)
    writes = _writes(events)
    for start in range(0, len(writes), batch):
        view.apply(writes[start : start + batch])
    client.indices.refresh(index=index)


def _all_docs(client: OpenSearch, index: str) -> dict[str, dict[str, Any]]:
    client.indices.refresh(index=index)
    response = client.search(index=index, body={"size": 1000, "query": {"match_all": {}}})
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


@pytest.fixture
def catalog(client: OpenSearch, index: str) -> dict[str, str]:
    story, ids = build_story()
    _load(client, index, story.events)
    return ids


def _names(result: dict[str, Any]) -> list[str]:
    return [hit["name"] for hit in result["hits"]]


def test_a_typo_finds_the_icon(client: OpenSearch, index: str, catalog: dict[str, str]) -> None:
    assert _names(queries.search(client, index, q="calender")) == ["calendar"]


def test_a_synonym_finds_the_icon(client: OpenSearch, index: str, catalog: dict[str, str]) -> None:
    assert _names(queries.search(client, index, q="bin")) == ["trash"]
    assert _names(queries.search(client, index, q="house")) == ["home"]


def test_suggest_completes_visible_names(
    client: OpenSearch, index: str, catalog: dict[str, str]
) -> None:
    assert queries.suggest(client, index, "arr") == ["arrow-left", "arrow-right"]
    assert queries.suggest(client, index, "cal") == ["calendar"]
    assert queries.suggest(client, index, "zzz") == []


def test_facets_are_exact(client: OpenSearch, index: str, catalog: dict[str, str]) -> None:
    result = queries.search(client, index)
    assert result["total"] == 5
    assert sorted(_names(result)) == sorted(VISIBLE)
    assert result["facets"] == {
        "style": {"line": 5},
        "category": {"navigation": 3, "time": 1, "ui": 1},
        "tag": {"direction": 2, "building": 1, "date": 1, "remove": 1},
        "family": {F1: 5},
        "set": {S1: 5},
        "licence": {"standard": 4, "extended": 1},
        "price": {"free": 2, "paid": 3},
        "price_band": {"free": 2, "under-5": 1, "5-10": 1, "10-plus": 1},
    }
    paid = queries.search(client, index, price="paid", category="navigation")
    assert sorted(_names(paid)) == ["arrow-right", "home"]
    assert paid["facets"]["price"] == {"free": 0, "paid": 2}


def test_the_icon_document_is_shaped_for_the_api(
    client: OpenSearch, index: str, catalog: dict[str, str]
) -> None:
    icon = queries.get_icon(client, index, catalog["trash"])
    assert icon == {
        "id": catalog["trash"],
        "name": "trash",
        "set_id": S1,
        "set_name": "Essentials Line",
        "family_id": F1,
        "family_name": "Essentials",
        "style": "line",
        "tags": ["remove"],
        "categories": ["ui"],
        "licence": "standard",
        "is_free": False,
        "price": {"amount_minor": 500, "currency": USD},
        "formats": ["png", "svg", "webp"],
        "created_at": "2026-01-01T00:00:10Z",
        "purchases": 0,
        "downloads": 0,
    }
    assert queries.get_set(client, index, S1) == {
        "id": S1,
        "name": "Essentials Line",
        "family_id": F1,
        "style": "line",
        "bundle_price": None,
        "created_at": "2026-01-01T00:00:03Z",
    }
    families = queries.list_families(client, index)
    assert [f["id"] for f in families["items"]] == [F1]
    assert (families["total"], families["next_cursor"]) == (1, None)
    assert [s["id"] for s in queries.list_sets(client, index)["items"]] == [S1, S3]
    assert [s["id"] for s in queries.list_sets(client, index, family_id=F1)["items"]] == [S1]
    assert queries.get_family(client, index, F1) is not None
    assert queries.get_family(client, index, F2) is None


def test_hidden_icons_are_never_returned(
    client: OpenSearch, index: str, catalog: dict[str, str]
) -> None:
    hidden = ("arrow-up", "arrow-down", "arrow-back")  # draft; set draft; family draft
    for name in hidden:
        assert queries.get_icon(client, index, catalog[name]) is None
    arrows = _names(queries.search(client, index, q="arrow"))
    assert sorted(arrows) == ["arrow-left", "arrow-right"]
    assert queries.get_set(client, index, S2) is None
    for name in VISIBLE:
        assert queries.get_icon(client, index, catalog[name]) is not None


def test_documents_do_not_depend_on_redelivery_or_aggregate_order(
    client: OpenSearch, index: str
) -> None:
    story, _ = build_story()
    _load(client, index, story.events)
    in_order = _all_docs(client, index)
    assert len(in_order) == 8 + 3 + 2

    _load(client, index, story.events, batch=len(story.events))
    _load(client, index, story.events, batch=4)
    assert _all_docs(client, index) == in_order

    other = f"{index}-reversed"
    create_index(client, other)
    try:
        _load(client, other, _reversed_by_aggregate(story.events), batch=3)
        assert _all_docs(client, other) == in_order
        _load(client, other, _reversed_by_aggregate(story.events))
        assert _all_docs(client, other) == in_order
    finally:
        client.indices.delete(index=other, ignore_unavailable=True)


def test_redelivered_writes_change_no_document(client: OpenSearch, index: str) -> None:
    story, _ = build_story()
    writes = _writes(story.events)
    view = OpenSearchCatalogView(client, index)
    assert view.apply(writes) > 0
    assert view.apply(writes) == 0


@pytest.mark.parametrize("sort", ["relevance", "newest", "popular"])
def test_cursor_pagination_walks_every_hit_once(
    client: OpenSearch, index: str, catalog: dict[str, str], sort: str
) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = queries.search(client, index, sort=sort, cursor=cursor, size=2)
        seen.extend(hit["id"] for hit in page["hits"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(catalog[name] for name in VISIBLE)
    assert len(seen) == len(set(seen))
    newest = queries.search(client, index, sort="newest")
    assert _names(newest) == ["home", "arrow-right", "arrow-left", "trash", "calendar"]


def test_a_bad_cursor_is_rejected(client: OpenSearch, index: str, catalog: dict[str, str]) -> None:
    home = catalog["home"]
    for bad in (
        "not-a-cursor!",
        "newest~1",
        f"newest~x~{home}",
        f"newest~1~2~{home}",
        f"top~1~{home}",
    ):
        with pytest.raises(queries.InvalidCursor, match="invalid cursor"):
            queries.search(client, index, cursor=bad)


def test_a_cursor_continues_in_its_own_order(
    client: OpenSearch, index: str, catalog: dict[str, str]
) -> None:
    first = queries.search(client, index, sort="newest", size=2)
    assert first["next_cursor"].startswith("newest~")
    following = queries.search(client, index, sort="relevance", cursor=first["next_cursor"], size=2)
    assert _names(following) == ["arrow-left", "trash"]


def _library_event(
    story: Story, library_id: str, version: int, event_type: str, data: dict[str, Any]
) -> Envelope:
    position = 10_000 + len(story.events)
    envelope = Envelope(
        event_id=event_id_for(library_id, version),
        type=event_type,
        schema_version=1,
        context="commerce",
        aggregate_type="Library",
        aggregate_id=library_id,
        aggregate_version=version,
        position=position,
        occurred_at="2026-01-02T00:00:00Z",
        actor="customer",
        correlation_id=f"corr-pop-{position}",
        causation_id=None,
        data=data,
    )
    story.events.append(envelope)
    return envelope


def _purchases_story(ids: dict[str, str]) -> list[Envelope]:
    """Three customers: A buys trash and home, B buys trash (then it is refunded) and downloads
    it twice before (one customer: counted once), C buys trash and downloads home once."""
    story = Story()
    a, b, c = _uid("library-a"), _uid("library-b"), _uid("library-c")

    def grant(library: str, version: int, order: str, *names: str) -> None:
        icons = [{"icon_id": ids[name], "icon_version": 1} for name in names]
        _library_event(
            story,
            library,
            version,
            "Library.EntitlementsGranted",
            {"order_id": _uid(order), "icons": icons},
        )

    def download(library: str, version: int, name: str) -> None:
        data = {"icon_id": ids[name], "format": "png", "size": 64, "size_bytes": 900}
        _library_event(story, library, version, "Library.DownloadRecorded", data)

    grant(a, 2, "order-a", "trash", "home")
    grant(b, 2, "order-b", "trash")
    download(b, 3, "trash")
    download(b, 4, "trash")
    revoke = {"order_id": _uid("order-b"), "reason": "refunded"}
    _library_event(story, b, 5, "Library.EntitlementsRevoked", revoke)
    grant(c, 2, "order-c", "trash")
    download(c, 3, "home")
    return story.events


def _popularity_writes(events: Sequence[Envelope]) -> list[Any]:
    from projections.popularity import apply as project_popularity

    return [w for e in events for w in project_popularity(e)]


@pytest.fixture
def popularity_prefix(settings: Settings) -> Iterator[str]:
    import redis

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    prefix = f"test-pop-{uuid.uuid4().hex[:10]}:"
    yield prefix
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def test_popularity_counts_purchases_in_force_and_downloads(
    settings: Settings,
    client: OpenSearch,
    index: str,
    catalog: dict[str, str],
    popularity_prefix: str,
) -> None:
    import redis

    from projections.popularity_view import PopularityView

    r = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    view = PopularityView(r, client, prefix=popularity_prefix, index=index)
    writes = _popularity_writes(_purchases_story(catalog))
    assert view.apply(writes) == 2
    assert view.apply(writes) == 0
    for write in writes:
        assert view.apply([write]) == 0
    assert view.counts(catalog["trash"]) == {"purchases": 2, "downloads": 1, "seq": 5}
    assert view.counts(catalog["home"]) == {"purchases": 1, "downloads": 1, "seq": 2}
    client.indices.refresh(index=index)

    trash = queries.get_icon(client, index, catalog["trash"])
    home = queries.get_icon(client, index, catalog["home"])
    assert trash is not None
    assert home is not None
    assert (trash["purchases"], trash["downloads"]) == (2, 1)
    assert (home["purchases"], home["downloads"]) == (1, 1)
    popular = queries.search(client, index, sort="popular")
    assert _names(popular)[:2] == ["trash", "home"]
    r.close()


def test_popularity_does_not_depend_on_arrival_order(
    settings: Settings, client: OpenSearch, index: str, popularity_prefix: str
) -> None:
    """Counts that arrive before their icon's document exist, and libraries in any order, give
    the same documents as the catalog first and the libraries in order."""
    import redis

    from projections.popularity_view import PopularityView

    r = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    story, ids = build_story()
    library_events = _purchases_story(ids)
    _load(client, index, story.events)
    PopularityView(r, client, prefix=popularity_prefix, index=index).apply(
        _popularity_writes(library_events)
    )
    expected = _all_docs(client, index)
    assert expected[f"icon:{ids['trash']}"]["purchases"] == 2

    other = f"{index}-counts-first"
    create_index(client, other)
    try:
        late = PopularityView(r, client, prefix=f"{popularity_prefix}late:", index=other)
        for event in _reversed_by_aggregate(library_events):
            late.apply(_popularity_writes([event]))
        _load(client, other, _reversed_by_aggregate(story.events), batch=5)
        assert _all_docs(client, other) == expected
    finally:
        client.indices.delete(index=other, ignore_unavailable=True)
        r.close()


class _CatalogDownOnce:
    """The real OpenSearch client whose first bulk write fails as if the connection dropped."""

    def __init__(self, client: OpenSearch) -> None:
        self._client = client
        self.failed = 0

    def bulk(self, **kwargs: Any) -> Any:
        from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

        if not self.failed:
            self.failed += 1
            raise OpenSearchConnectionError("N/A", "connection dropped", None)
        return self._client.bulk(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_popularity_copy_survives_a_failed_catalog_write_and_redelivery(
    settings: Settings,
    client: OpenSearch,
    index: str,
    catalog: dict[str, str],
    popularity_prefix: str,
) -> None:
    """Redis counts the batch, the catalog write then fails: the redelivered batch counts nothing
    again and still puts the exact counts on the documents."""
    import redis
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

    from projections.popularity_view import PopularityView

    r = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    flaky = _CatalogDownOnce(client)
    view = PopularityView(r, flaky, prefix=popularity_prefix, index=index)
    writes = _popularity_writes(_purchases_story(catalog))
    with pytest.raises(OpenSearchConnectionError):
        view.apply(writes)
    assert flaky.failed == 1
    assert view.counts(catalog["trash"]) == {"purchases": 2, "downloads": 1, "seq": 5}

    copied = view.apply(writes)
    assert view.counts(catalog["trash"]) == {"purchases": 2, "downloads": 1, "seq": 5}
    assert view.counts(catalog["home"]) == {"purchases": 1, "downloads": 1, "seq": 2}
    client.indices.refresh(index=index)
    trash = queries.get_icon(client, index, catalog["trash"])
    home = queries.get_icon(client, index, catalog["home"])
    assert trash is not None
    assert home is not None
    assert (trash.get("purchases"), trash.get("downloads")) == (2, 1)
    assert (home.get("purchases"), home.get("downloads")) == (1, 1)
    assert copied == 2
    assert view.apply(writes) == 0
    assert view.uncopied() == {}
    r.close()


def test_a_catalog_with_no_index_yet_reads_as_an_empty_one(client: OpenSearch, index: str) -> None:
    """Until the projection first runs there is no index behind the alias: every read answers
    exactly what an empty index answers (a fresh stack's API used to answer 500)."""
    missing = f"test-catalog-missing-{uuid.uuid4().hex[:10]}"
    assert not client.indices.exists(index=missing)
    empty = queries.search(client, index)
    assert empty["total"] == 0
    assert empty["hits"] == []
    assert queries.search(client, missing) == empty
    assert queries.search(client, missing, q="arrow", price="free") == queries.search(
        client, index, q="arrow", price="free"
    )
    assert queries.suggest(client, missing, "arr") == []
    assert queries.get_icon(client, missing, _uid("any")) is None
    assert queries.get_set(client, missing, S1) is None
    assert queries.get_family(client, missing, F1) is None
    nothing = {"items": [], "total": 0, "next_cursor": None}
    assert queries.list_families(client, missing) == nothing
    assert queries.list_sets(client, missing, F1) == nothing
    assert not client.indices.exists(index=missing), "a read created the index"


def test_set_and_family_lists_page_by_cursor(
    client: OpenSearch, index: str, catalog: dict[str, str]
) -> None:
    """A list walked a page at a time gives every document once, in the one-page order, with
    the total on every page and no cursor after the last."""
    whole = queries.list_sets(client, index)
    assert [s["id"] for s in whole["items"]] == [S1, S3]
    first = queries.list_sets(client, index, size=1)
    assert [s["id"] for s in first["items"]] == [S1]
    assert first["total"] == 2
    assert first["next_cursor"] is not None
    second = queries.list_sets(client, index, size=1, cursor=first["next_cursor"])
    assert [s["id"] for s in second["items"]] == [S3]
    assert second["total"] == 2
    # A full last page has a cursor whose page is empty; a short one has none.
    assert second["next_cursor"] is not None
    last = queries.list_sets(client, index, size=1, cursor=second["next_cursor"])
    assert last == {"items": [], "total": 2, "next_cursor": None}
    assert queries.list_sets(client, index, size=2)["next_cursor"] is not None
    assert queries.list_sets(client, index, size=3)["next_cursor"] is None
    with pytest.raises(queries.InvalidCursor):
        queries.list_sets(client, index, cursor="newest~1~" + S1)
