"""Zip batches: pure functions from the uploaded bytes to a checked manifest and its SVG files.

Whole-zip refusals (`ZipRefused`, 422): not a zip, too large, too many entries, a zip bomb
(declared sizes, the compression ratio of each entry, and the bytes actually produced while
inflating, each against the limits), encrypted entries, path traversal, absolute paths,
symlinks (unix mode in ``external_attr``), duplicate names, and a missing or invalid
``manifest.json`` (JSON Schema: pipelines/schemas/import-manifest.json). Per-file problems (a file
listed but absent, an SVG the policy refuses) are not refusals: they are reported per file.
"""

from __future__ import annotations

import functools
import io
import json
import posixpath
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from pipelines.errors import RefusalCode, ZipRefused

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_PATH = Path(__file__).with_name("schemas") / "import-manifest.json"
_CHUNK = 64 * 1024
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on a zip batch (settings ``zip_max_*``)."""

    max_bytes: int = 32 * 1024 * 1024
    max_entries: int = 500
    max_uncompressed_bytes: int = 64 * 1024 * 1024
    max_ratio: int = 100


@dataclass(frozen=True)
class ManifestIcon:
    """One manifest entry: the SVG ``file`` in the zip and the icon to create from it."""

    file: str
    name: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    amount_minor: int
    currency: str
    licence: str
    style: str | None


@dataclass(frozen=True)
class ZipBatch:
    """A checked batch: the manifest's icons, in manifest order, and the zip's files by name."""

    icons: tuple[ManifestIcon, ...]
    files: dict[str, bytes]


def read_batch(raw: bytes, limits: ZipLimits | None = None) -> ZipBatch:
    """The manifest and files of ``raw``; raises `ZipRefused` naming the first rule broken."""
    limits = limits or ZipLimits()
    if len(raw) > limits.max_bytes:
        raise ZipRefused(
            RefusalCode.ZIP_TOO_LARGE, f"{len(raw)} bytes exceeds the limit of {limits.max_bytes}"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ZipRefused(RefusalCode.ZIP_INVALID, f"not a readable zip: {exc}") from None
    with archive:
        check_entries(archive.infolist(), limits)
        files = _read_all(raw, [i for i in archive.infolist() if not i.is_dir()], limits)
    manifest = files.pop(MANIFEST_NAME, None)
    if manifest is None:
        raise ZipRefused(
            RefusalCode.MANIFEST_MISSING, f"the zip has no {MANIFEST_NAME} at its root"
        )
    return ZipBatch(parse_manifest(manifest), files)


def check_entries(entries: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """The checks made on the central directory, before anything is decompressed."""
    if len(entries) > limits.max_entries:
        raise ZipRefused(
            RefusalCode.ZIP_TOO_MANY_ENTRIES,
            f"{len(entries)} entries exceeds the limit of {limits.max_entries}",
        )
    seen: set[str] = set()
    declared_total = 0
    for info in entries:
        name = _checked_name(info)
        if name in seen:
            raise ZipRefused(RefusalCode.ZIP_DUPLICATE_NAME, f"{name!r} appears more than once")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ZipRefused(RefusalCode.ZIP_ENCRYPTED, f"{name!r} is encrypted")
        declared_total += info.file_size
        if declared_total > limits.max_uncompressed_bytes:
            raise ZipRefused(
                RefusalCode.ZIP_BOMB,
                f"the entries declare more than {limits.max_uncompressed_bytes} bytes in all",
            )
        if info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ZipRefused(
                RefusalCode.ZIP_BOMB,
                f"{name!r} expands {info.file_size // max(info.compress_size, 1)} times "
                f"(limit {limits.max_ratio})",
            )


def _checked_name(info: zipfile.ZipInfo) -> str:
    # ZipInfo.filename is already normalised (backslashes → "/"); the raw name is checked too.
    raw = info.orig_filename
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ZipRefused(RefusalCode.ZIP_SYMLINK, f"{name!r} is a symbolic link")
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":") or name.startswith("/"):
        raise ZipRefused(RefusalCode.ZIP_ABSOLUTE_PATH, f"{raw!r} is an absolute path")
    parts = raw.replace("\\", "/").split("/")
    bare = name.rstrip("/") if info.is_dir() else name
    if ".." in parts or posixpath.normpath(bare) != bare or "\x00" in raw:
        raise ZipRefused(RefusalCode.ZIP_PATH_TRAVERSAL, f"{raw!r} leaves the archive's root")
    return name


def _read_all(raw: bytes, entries: list[zipfile.ZipInfo], limits: ZipLimits) -> dict[str, bytes]:
    """Every entry's bytes, inflated here chunk by chunk and counted: an entry that inflates past
    its declared size, or a batch past the limit, is stopped at once (headers cannot lie)."""
    files: dict[str, bytes] = {}
    budget = _Budget(limits.max_uncompressed_bytes)
    for info in entries:
        files[info.filename] = _inflate(raw, info, budget)
    return files


@dataclass
class _Budget:
    left: int

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise ZipRefused(RefusalCode.ZIP_BOMB, "the entries expand past the size limit")


def _inflate(raw: bytes, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    compressed = _compressed_bytes(raw, info)
    if info.compress_type == zipfile.ZIP_STORED:
        chunks = [compressed]
        budget.spend(len(compressed))
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        chunks = []
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        pending = compressed
        produced = 0
        while pending and not inflater.eof:
            try:
                chunk = inflater.decompress(pending, _CHUNK)
            except zlib.error as exc:
                raise ZipRefused(
                    RefusalCode.ZIP_INVALID, f"{info.filename!r} cannot be inflated: {exc}"
                ) from None
            pending = inflater.unconsumed_tail
            produced += len(chunk)
            if produced > info.file_size:
                raise ZipRefused(
                    RefusalCode.ZIP_BOMB,
                    f"{info.filename!r} inflates past its declared {info.file_size} bytes",
                )
            budget.spend(len(chunk))
            chunks.append(chunk)
    else:
        raise ZipRefused(
            RefusalCode.ZIP_INVALID,
            f"{info.filename!r} uses compression method {info.compress_type}; "
            "only stored and deflated entries are accepted",
        )
    data = b"".join(chunks)
    if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
        raise ZipRefused(
            RefusalCode.ZIP_INVALID, f"{info.filename!r} does not match its size or CRC"
        )
    return data


def _compressed_bytes(raw: bytes, info: zipfile.ZipInfo) -> bytes:
    """The entry's compressed data, located through its local header."""
    start = info.header_offset
    header = raw[start : start + _LOCAL_HEADER.size]
    if len(header) != _LOCAL_HEADER.size or not header.startswith(b"PK\x03\x04"):
        raise ZipRefused(RefusalCode.ZIP_INVALID, f"{info.filename!r} has no local header")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    data_start = start + _LOCAL_HEADER.size + name_length + extra_length
    return raw[data_start : data_start + info.compress_size]


@functools.cache
def manifest_validator() -> Draft202012Validator:
    """The validator of the published manifest schema (pipelines/schemas/import-manifest.json)."""
    schema = json.loads(MANIFEST_SCHEMA_PATH.read_text())
    return Draft202012Validator(schema)


def parse_manifest(raw: bytes) -> tuple[ManifestIcon, ...]:
    """The icons of a manifest; raises `ZipRefused` (import_manifest_invalid) listing errors."""
    try:
        document: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ZipRefused(
            RefusalCode.MANIFEST_INVALID, f"manifest.json is not JSON: {exc}"
        ) from None
    errors = sorted(manifest_validator().iter_errors(document), key=lambda e: list(e.path))
    if errors:
        shown = "; ".join(f"{_where(error.path)}: {error.message}" for error in errors[:5])
        raise ZipRefused(RefusalCode.MANIFEST_INVALID, f"manifest.json: {shown}")
    files = [icon["file"] for icon in document["icons"]]
    duplicates = sorted({file for file in files if files.count(file) > 1})
    if duplicates:
        raise ZipRefused(
            RefusalCode.MANIFEST_INVALID, f"manifest.json lists {duplicates} more than once"
        )
    return tuple(_icon(entry) for entry in document["icons"])


def _where(path: Any) -> str:
    return "/".join(str(part) for part in path) or "(root)"


def _icon(entry: dict[str, Any]) -> ManifestIcon:
    return ManifestIcon(
        file=entry["file"],
        name=entry["name"],
        tags=tuple(entry.get("tags", ())),
        categories=tuple(entry.get("categories", ())),
        amount_minor=entry["price"]["amount_minor"],
        currency=entry["price"]["currency"],
        licence=entry.get("licence", "standard"),
        style=entry.get("style"),
    )
