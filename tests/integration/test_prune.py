"""Earlier rebuild generations: found exactly (never the live one) and deleted, on real Redis
and OpenSearch."""

from __future__ import annotations

import uuid

import redis
from opensearchpy import OpenSearch

from infra.settings import Settings
from projections.catalog_alias import stale_indices, switch_alias
from projections.catalog_view import create_index
from projections.keyspace import delete_prefix, stale_prefixes, switch_prefix


def test_stale_key_prefixes_exclude_the_live_one_and_are_deleted(settings: Settings) -> None:
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    name = f"prune{uuid.uuid4().hex[:8]}"
    try:
        for generation in (1, 2, 3):
            for n in range(3):
                client.set(f"{name}-v{generation}:cart:{n}", "x")
        client.set(f"{name}x-v1:cart:0", "another projection")
        switch_prefix(client, name, f"{name}-v2:")
        assert stale_prefixes(client, name) == [f"{name}-v1:", f"{name}-v3:"]
        assert delete_prefix(client, f"{name}-v1:") == 3
        assert stale_prefixes(client, name) == [f"{name}-v3:"]
        assert client.exists(f"{name}-v2:cart:0", f"{name}x-v1:cart:0") == 2
    finally:
        for key in client.scan_iter(match=f"{name}*"):
            client.delete(key)
        client.delete(f"projection:{name}:prefix")
        client.close()


def test_stale_indices_are_the_generations_the_alias_does_not_name(settings: Settings) -> None:
    client = OpenSearch(hosts=[settings.opensearch_url], timeout=30)
    alias = f"prune-{uuid.uuid4().hex[:8]}"
    try:
        for generation in (1, 2, 3):
            create_index(client, f"{alias}-v{generation}")
        assert switch_alias(client, f"{alias}-v2", alias) is None
        assert stale_indices(client, alias) == [f"{alias}-v1", f"{alias}-v3"]
    finally:
        client.indices.delete(index=f"{alias}-v*", ignore_unavailable=True)
