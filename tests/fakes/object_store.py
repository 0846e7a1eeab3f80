"""`ObjectStore` in a dict, for unit tests (the contract suite in tests/contract runs the same
assertions against it and the real MinIO)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import quote

from pipelines.object_store import ObjectNotFound, PresignedPost


@dataclass
class MemoryObjectStore:
    """`ObjectStore` in a dict, for unit tests; URLs are ``memory://`` pseudo-URLs."""

    bucket: str = "memory"
    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    written: dict[str, float] = field(default_factory=dict)
    """When each key was last written (``time.time()``), for ``keys_older_than``."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        self.objects[key] = (bytes(data), content_type)
        self.written[key] = time.time()

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        try:
            data = self.objects[key][0]
        except KeyError as exc:
            raise ObjectNotFound(key) from exc
        return data if max_bytes is None else data[: max_bytes + 1]

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.written.pop(key, None)

    def presigned_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        suffix = "" if filename is None else f"&filename={quote(filename)}"
        return f"memory://{self.bucket}/{quote(key)}?method=GET&expires={expires_s}{suffix}"

    def presigned_post(
        self, key: str, *, expires_s: int, content_type: str, max_bytes: int
    ) -> PresignedPost:
        url = f"memory://{self.bucket}?method=POST&expires={expires_s}&max_bytes={max_bytes}"
        return PresignedPost(url, {"key": key, "Content-Type": content_type})

    def keys_older_than(self, prefix: str, age_s: float) -> list[str]:
        now = time.time()
        return [k for k in self.objects if k.startswith(prefix) and now - self.written[k] > age_s]
