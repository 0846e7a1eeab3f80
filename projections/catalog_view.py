"""The catalog read model in OpenSearch: icons, sets and families in one index.

Every icon document combines four sources (the icon, its set, its family and its popularity
counts), so no single external version can guard it. Each source's patches are guarded by that
source's own version field (``icon_version``, ``set_version``, ``family_version``,
``popularity_version``): a patch is applied only when its
version is newer, and a document to which nothing applies is not written. The local stack's
OpenSearch has no script engine (no ``lang-painless``) and no ``reindex`` module (so no
``update_by_query``), so the guard runs here, as an optimistic read-modify-write: a real-time
``mget`` reads each document with its ``_seq_no``/``_primary_term``, and the bulk write is
conditional on them (``if_seq_no``); a conflicting document is re-read and retried. Set and
family changes are copied onto their icons with the same guarded patch, and a new icon copies its
set's and family's current fields, so the result depends neither on redelivery nor on the order
in which different aggregates' events arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from projections.catalog import (
    FAMILY_SHARED_FIELDS,
    SET_SHARED_FIELDS,
    CatalogWrite,
    family_doc_id,
    set_doc_id,
)

SYNONYMS_FILE = Path(__file__).with_name("synonyms.txt")
RETRY_ON_CONFLICT = 5
PROPAGATION_PAGE = 500


def merge_patches(
    doc: dict[str, Any], patches: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """Applies, in order, each patch newer than ``doc``'s version of the patch's source.

    Returns the new document and whether anything changed; ``position`` becomes the highest
    applied event position.
    """
    merged = dict(doc)
    changed = False
    for patch in patches:
        field = f"{patch['source']}_version"
        current = merged.get(field)
        if current is not None and patch["version"] <= current:
            continue
        merged.update(patch["fields"])
        merged[field] = patch["version"]
        merged["position"] = max(int(merged.get("position") or 0), int(patch["position"]))
        changed = True
    return merged, changed


def load_synonyms(path: Path = SYNONYMS_FILE) -> list[str]:
    """Solr-format rules, one a line; blank lines and ``#`` comments are skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _keyword() -> dict[str, Any]:
    return {"type": "keyword"}


def _searchable_keyword() -> dict[str, Any]:
    """A facet keyword that full-text queries can also match (``<field>.text``)."""
    return {
        "type": "keyword",
        "fields": {
            "text": {
                "type": "text",
                "analyzer": "catalog_text",
                "search_analyzer": "catalog_search",
            }
        },
    }


def _name_text() -> dict[str, Any]:
    return {
        "type": "text",
        "analyzer": "catalog_text",
        "search_analyzer": "catalog_search",
        "fields": {"keyword": {"type": "keyword"}},
    }


def index_body() -> dict[str, Any]:
    return {
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "analysis": {
                "filter": {
                    "catalog_autocomplete": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20},
                    "catalog_synonyms": {
                        "type": "synonym_graph",
                        "synonyms": load_synonyms(),
                    },
                },
                "analyzer": {
                    "catalog_text": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding"],
                    },
                    "catalog_search": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding", "catalog_synonyms"],
                    },
                    "catalog_autocomplete": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding", "catalog_autocomplete"],
                    },
                },
            },
        },
        "mappings": {
            "dynamic": False,
            "properties": {
                "kind": _keyword(),
                "id": _keyword(),
                "name": {
                    **_name_text(),
                    "fields": {
                        "keyword": {"type": "keyword"},
                        "autocomplete": {
                            "type": "text",
                            "analyzer": "catalog_autocomplete",
                            "search_analyzer": "standard",
                        },
                    },
                },
                "family_name": _name_text(),
                "set_name": _name_text(),
                "description": {"type": "text", "analyzer": "catalog_text"},
                "style": _keyword(),
                "categories": _searchable_keyword(),
                "tags": _searchable_keyword(),
                "family_id": _keyword(),
                "set_id": _keyword(),
                "owner_id": _keyword(),
                "licence": _keyword(),
                "is_free": {"type": "boolean"},
                "price_minor": {"type": "long"},
                "currency": _keyword(),
                "bundle_price_minor": {"type": "long"},
                "bundle_currency": _keyword(),
                "formats": _keyword(),
                "status": _keyword(),
                "set_status": _keyword(),
                "family_status": _keyword(),
                "created_at": {"type": "date"},
                "purchases": {"type": "long", "null_value": 0},
                "downloads": {"type": "long", "null_value": 0},
                "icon_version": {"type": "long"},
                "set_version": {"type": "long"},
                "family_version": {"type": "long"},
                "popularity_version": {"type": "long"},
                "position": {"type": "long"},
            },
        },
    }


def create_index(client: Any, name: str) -> None:
    client.indices.create(index=name, body=index_body())


def _patch(write: CatalogWrite) -> dict[str, Any]:
    return {
        "source": write.source,
        "version": write.version,
        "position": write.position,
        "fields": write.fields,
    }


def shared_patch(source: str, doc: dict[str, Any]) -> dict[str, Any] | None:
    """The patch that copies a set's or family's current fields onto its icons."""
    names = SET_SHARED_FIELDS if source == "set" else FAMILY_SHARED_FIELDS
    version = doc.get(f"{source}_version")
    if version is None:
        return None
    return {
        "source": source,
        "version": version,
        "position": doc.get("position", 0),
        "fields": {name: doc.get(name) for name in names},
    }


class OpenSearchCatalogView:
    def __init__(self, client: Any, index: str) -> None:
        self._client = client
        self._index = index

    @property
    def index(self) -> str:
        return self._index

    def apply(self, writes: Sequence[CatalogWrite]) -> int:
        """Applies a batch; returns how many documents changed (propagation included)."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        sources: dict[str, str] = {}
        for write in writes:
            grouped.setdefault(write.doc_id, []).append(_patch(write))
            sources[write.doc_id] = write.source
        owners = {k: v for k, v in grouped.items() if sources[k] in ("set", "family")}
        icons = {k: v for k, v in grouped.items() if sources[k] not in ("set", "family")}
        changed_owners = self._guarded_write(owners)
        changed = len(changed_owners)
        if icons:
            for doc_id, extra in self._denormalised(writes).items():
                icons[doc_id] = icons[doc_id] + extra
            changed += len(self._guarded_write(icons))
        if changed_owners:
            changed += self._propagate(changed_owners, sources)
        return changed

    def _guarded_write(self, patches: dict[str, list[dict[str, Any]]]) -> list[str]:
        """Merges the patches into the documents (conditional writes, retried on conflict)."""
        changed: list[str] = []
        pending = dict(patches)
        for _ in range(RETRY_ON_CONFLICT + 1):
            if not pending:
                return changed
            found = self._client.mget(index=self._index, body={"ids": list(pending)})
            body: list[dict[str, Any]] = []
            for doc in found["docs"]:
                merged, did_change = merge_patches(doc.get("_source") or {}, pending[doc["_id"]])
                if not did_change:
                    continue
                if doc.get("found"):
                    action = {
                        "index": {
                            "_index": self._index,
                            "_id": doc["_id"],
                            "if_seq_no": doc["_seq_no"],
                            "if_primary_term": doc["_primary_term"],
                        }
                    }
                else:
                    action = {"create": {"_index": self._index, "_id": doc["_id"]}}
                body.extend([action, merged])
            if not body:
                return changed
            response = self._client.bulk(body=body)
            retry: dict[str, list[dict[str, Any]]] = {}
            errors: list[str] = []
            for item in response["items"]:
                result = next(iter(item.values()))
                if result.get("status") == 409:
                    retry[result["_id"]] = pending[result["_id"]]
                elif "error" in result:
                    errors.append(f"{result['_id']}: {result['error']}")
                else:
                    changed.append(result["_id"])
            if errors:
                raise RuntimeError("catalog bulk write failed: " + "; ".join(errors))
            pending = retry
        raise RuntimeError(f"catalog writes kept conflicting: {sorted(pending)}")

    def _owner_patches(self, owner_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current shared-field patch of each existing set/family document."""
        if not owner_ids:
            return {}
        found = self._client.mget(index=self._index, body={"ids": list(owner_ids)})
        patches: dict[str, dict[str, Any]] = {}
        for doc in found["docs"]:
            if doc.get("found"):
                source = "set" if doc["_id"].startswith("set:") else "family"
                patch = shared_patch(source, doc["_source"])
                if patch is not None:
                    patches[doc["_id"]] = patch
        return patches

    def _denormalised(self, writes: Sequence[CatalogWrite]) -> dict[str, list[dict[str, Any]]]:
        """For icons created in this batch: their set's and family's current fields."""
        wanted: dict[str, tuple[str, str]] = {}
        for write in writes:
            if write.source == "icon" and write.fields.get("kind") == "icon":
                wanted[write.doc_id] = (
                    set_doc_id(write.fields["set_id"]),
                    family_doc_id(write.fields["family_id"]),
                )
        owners = self._owner_patches(sorted({o for pair in wanted.values() for o in pair}))
        return {doc_id: [owners[o] for o in pair if o in owners] for doc_id, pair in wanted.items()}

    def _propagate(self, changed: list[str], sources: dict[str, str]) -> int:
        """Copies each changed set's or family's current fields onto its icons: one search for
        all of the batch's changed owners, then one guarded write per page of icons."""
        owners = self._owner_patches(changed)
        if not owners:
            return 0
        self._client.indices.refresh(index=self._index)
        by_key: dict[str, list[str]] = {"set_id": [], "family_id": []}
        for owner_id in owners:
            key = "set_id" if sources[owner_id] == "set" else "family_id"
            by_key[key].append(owner_id.split(":", 1)[1])
        updated = 0
        for page in self._icons_of(by_key):
            patches = {
                hit["_id"]: [
                    owners[o]
                    for o in (
                        set_doc_id(hit["_source"]["set_id"]),
                        family_doc_id(hit["_source"]["family_id"]),
                    )
                    if o in owners
                ]
                for hit in page
            }
            updated += len(self._guarded_write(patches))
        return updated

    def _icons_of(self, by_key: dict[str, list[str]]) -> Iterator[list[dict[str, Any]]]:
        """The icon documents (ids, set and family ids) of the given owners, a page at a time."""
        owners = [{"terms": {key: values}} for key, values in by_key.items() if values]
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": PROPAGATION_PAGE,
                "_source": ["set_id", "family_id"],
                "query": {
                    "bool": {
                        "filter": [{"term": {"kind": "icon"}}],
                        "should": owners,
                        "minimum_should_match": 1,
                    }
                },
                "sort": [{"id": "asc"}],
            }
            if after is not None:
                body["search_after"] = after
            hits = self._client.search(index=self._index, body=body)["hits"]["hits"]
            if not hits:
                return
            yield hits
            if len(hits) < PROPAGATION_PAGE:
                return
            after = hits[-1]["sort"]
