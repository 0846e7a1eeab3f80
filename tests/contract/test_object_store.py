"""One suite for the `ObjectStore` port, run against the in-memory fake and real MinIO."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from infra.bootstrap import Container
from pipelines.object_store import MemoryObjectStore, ObjectNotFound, ObjectStore, S3ObjectStore
from tests.support import create_scratch_bucket, drop_scratch_bucket


@pytest.fixture(scope="module")
def s3_store(container: Container) -> Iterator[S3ObjectStore]:
    bucket = create_scratch_bucket(container.s3, "iconmarket-test-store")
    yield S3ObjectStore(container.s3, bucket)
    drop_scratch_bucket(container.s3, bucket)


@pytest.fixture(params=["memory", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    if request.param == "memory":
        return MemoryObjectStore()
    s3: S3ObjectStore = request.getfixturevalue("s3_store")
    return s3


def key() -> str:
    return f"contract/{uuid.uuid4().hex}.svg"


def test_put_then_get_exists_and_delete(store: ObjectStore) -> None:
    k = key()
    assert not store.exists(k)
    store.put_bytes(k, b"<svg/>", content_type="image/svg+xml")
    assert store.exists(k)
    assert store.get_bytes(k) == b"<svg/>"
    store.put_bytes(k, b"<svg></svg>", content_type="image/svg+xml")
    assert store.get_bytes(k) == b"<svg></svg>"
    store.delete(k)
    assert not store.exists(k)
    store.delete(k)  # deleting nothing is fine


def test_get_with_a_cap_reads_at_most_one_byte_past_it(store: ObjectStore) -> None:
    k = key()
    store.put_bytes(k, b"0123456789", content_type="application/octet-stream")
    assert store.get_bytes(k, max_bytes=3) == b"0123"
    assert store.get_bytes(k, max_bytes=100) == b"0123456789"


def test_a_missing_object_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get_bytes(key())


def test_presigned_urls_name_the_bucket_and_key(store: ObjectStore) -> None:
    k = key()
    put_url = store.presigned_put(k, expires_s=60, content_type="image/svg+xml")
    get_url = store.presigned_get(k, expires_s=60, filename="icon.svg")
    for url in (put_url, get_url):
        assert store.bucket in url
        assert k.split("/")[-1] in url


def test_presigned_urls_work_against_the_real_service(s3_store: S3ObjectStore) -> None:
    k = key()
    put_url = s3_store.presigned_put(k, expires_s=60, content_type="image/svg+xml")
    assert httpx.put(
        put_url, content=b"<svg/>", headers={"Content-Type": "image/svg+xml"}
    ).is_success
    unsigned_type = httpx.put(put_url, content=b"<svg/>", headers={"Content-Type": "text/html"})
    assert unsigned_type.status_code == 403
    got = httpx.get(s3_store.presigned_get(k, expires_s=60, filename="my icon.svg"))
    assert got.content == b"<svg/>"
    assert got.headers["content-disposition"].startswith('attachment; filename="myicon.svg"')
