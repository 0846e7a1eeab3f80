"""The object store port (put, get, exists, presigned URLs) and its S3 and in-memory adapters.

One store is bound to one bucket; build one per bucket (private originals and derivatives,
public previews) with `S3ObjectStore(client, bucket)`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote


class ObjectNotFound(LookupError):
    """The key has no object in the bucket."""


class ObjectStore(Protocol):
    """A bucket of immutable, content-addressed objects."""

    @property
    def bucket(self) -> str:
        """The bucket this store reads and writes."""
        ...

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        """Stores ``data`` at ``key`` (replacing any object there)."""
        ...

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The object at ``key``; raises `ObjectNotFound`.

        With ``max_bytes``, reads at most ``max_bytes + 1`` bytes so a caller can refuse an
        object that is too large without loading all of it.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Removes the object at ``key`` (no error if there is none)."""
        ...

    def presigned_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        """A URL that lets its holder GET ``key`` for ``expires_s`` seconds.

        With ``filename``, the response asks the browser to save it under that name.
        """
        ...

    def presigned_post(
        self, key: str, *, expires_s: int, content_type: str, max_bytes: int
    ) -> PresignedPost:
        """A form upload that lets its holder store one object of 1 to ``max_bytes`` bytes of
        ``content_type`` at ``key`` for ``expires_s`` seconds (the store refuses anything else)."""
        ...

    def keys_older_than(self, prefix: str, age_s: float) -> list[str]:
        """The keys under ``prefix`` last written more than ``age_s`` seconds ago."""
        ...


@dataclass(frozen=True)
class PresignedPost:
    """POST a multipart form to ``url`` with ``fields`` first and the file as ``file`` last."""

    url: str
    fields: dict[str, str]


@dataclass
class S3ObjectStore:
    """`ObjectStore` on an S3 (or S3-compatible, e.g. MinIO) bucket through a boto3 client."""

    client: Any
    bucket: str

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        extra = {} if max_bytes is None else {"Range": f"bytes=0-{max_bytes}"}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectNotFound(key) from exc
        body = response["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def presigned_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if filename is not None:
            params["ResponseContentDisposition"] = _attachment(filename)
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_s
        )
        return url

    def presigned_post(
        self, key: str, *, expires_s: int, content_type: str, max_bytes: int
    ) -> PresignedPost:
        signed = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_s,
        )
        return PresignedPost(str(signed["url"]), {k: str(v) for k, v in signed["fields"].items()})

    def keys_older_than(self, prefix: str, age_s: float) -> list[str]:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
        old: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            old.extend(o["Key"] for o in page.get("Contents", []) if o["LastModified"] < cutoff)
        return old


def _attachment(filename: str) -> str:
    safe = "".join(ch for ch in filename if ch.isalnum() or ch in "._-") or "download"
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(filename)}"
