"""One suite for the `ObjectStore` port, run against the in-memory fake and real MinIO."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from infra.bootstrap import Container
from pipelines.object_store import ObjectNotFound, ObjectStore, PresignedPost, S3ObjectStore
from tests.fakes.object_store import MemoryObjectStore
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


def post(upload: PresignedPost, data: bytes, content_type: str) -> httpx.Response:
    """The browser's form upload: every signed field, then the file."""
    return httpx.post(
        upload.url, data=upload.fields, files={"file": ("icon.svg", data, content_type)}
    )


def test_presigned_urls_name_the_bucket_and_key(store: ObjectStore) -> None:
    k = key()
    upload = store.presigned_post(k, expires_s=60, content_type="image/svg+xml", max_bytes=64)
    get_url = store.presigned_get(k, expires_s=60, filename="icon.svg")
    assert store.bucket in upload.url
    assert upload.fields["key"] == k
    assert store.bucket in get_url
    assert k.split("/")[-1] in get_url


def test_presigned_urls_work_against_the_real_service(s3_store: S3ObjectStore) -> None:
    k = key()
    upload = s3_store.presigned_post(k, expires_s=60, content_type="image/svg+xml", max_bytes=64)
    too_large = post(upload, b"<svg/>" + b" " * 64, "image/svg+xml")
    assert too_large.status_code == 400  # over the signed size range: nothing stored
    assert "EntityTooLarge" in too_large.text
    assert not s3_store.exists(k)
    retyped = PresignedPost(upload.url, {**upload.fields, "Content-Type": "text/html"})
    assert post(retyped, b"<svg/>", "text/html").status_code == 403  # not the signed type
    assert not s3_store.exists(k)
    assert post(upload, b"<svg/>", "image/svg+xml").status_code == 204
    got = httpx.get(s3_store.presigned_get(k, expires_s=60, filename="my icon.svg"))
    assert got.content == b"<svg/>"
    assert got.headers["content-disposition"].startswith('attachment; filename="myicon.svg"')
