"""Zip batch checks as pure functions, and the import flow on the in-memory store."""

from __future__ import annotations

import csv
import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from commands import messages as m
from commands.applications import build_applications
from commands.bus import CommandBus
from commands.errors import AccessDenied, AlreadyExists
from commands.routes import ROUTES
from pipelines.errors import ZipRefused
from pipelines.import_batch import ZipImporter
from pipelines.object_store import MemoryObjectStore
from pipelines.svg_ingest import SvgIngestion
from pipelines.svg_policy import SvgLimits
from pipelines.zip_import import ManifestIcon, ZipLimits, parse_manifest, read_batch
from tests.support import ctx

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "malicious"
ZIP_ROWS = [row for row in csv.DictReader((CORPUS / "expected.csv").open()) if row["kind"] == "zip"]
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><rect width="1"/></svg>'


def zipped(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def manifest(*icons: dict[str, Any]) -> bytes:
    return json.dumps({"version": 1, "icons": list(icons)}).encode()


def icon(file: str, **extra: Any) -> dict[str, Any]:
    return {"file": file, "name": file, "price": {"amount_minor": 5, "currency": "EUR"}, **extra}


def code_of(raw: bytes, limits: ZipLimits | None = None) -> str:
    with pytest.raises(ZipRefused) as caught:
        read_batch(raw, limits)
    return caught.value.code


@pytest.mark.parametrize("row", ZIP_ROWS, ids=[row["file"] for row in ZIP_ROWS])
def test_every_corpus_zip_is_refused_with_its_code(row: dict[str, str]) -> None:
    assert code_of((CORPUS / row["file"]).read_bytes()) == row["code"]


def test_a_good_batch_is_read_in_manifest_order() -> None:
    raw = zipped(
        [
            (
                "manifest.json",
                manifest(icon("b/one.svg", tags=["x"], style="line"), icon("two.svg")),
            ),
            ("b/", b""),
            ("b/one.svg", SVG),
            ("two.svg", SVG),
        ]
    )
    batch = read_batch(raw)
    assert batch.icons == (
        ManifestIcon("b/one.svg", "b/one.svg", ("x",), (), 5, "EUR", "standard", "line"),
        ManifestIcon("two.svg", "two.svg", (), (), 5, "EUR", "standard", None),
    )
    assert batch.files == {"b/one.svg": SVG, "two.svg": SVG}


def test_limits_are_settings() -> None:
    raw = zipped([("manifest.json", manifest(icon("a.svg"))), ("a.svg", SVG)])
    assert code_of(raw, ZipLimits(max_bytes=len(raw) - 1)) == "zip_too_large"
    assert code_of(raw, ZipLimits(max_entries=1)) == "zip_too_many_entries"
    assert code_of(raw, ZipLimits(max_uncompressed_bytes=50)) == "zip_bomb"
    assert code_of(raw, ZipLimits(max_ratio=1)) == "zip_bomb"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("..\\evil.svg", "zip_path_traversal"),
        ("a/../../evil.svg", "zip_path_traversal"),
        ("C:/evil.svg", "zip_absolute_path"),
        ("\\\\server\\evil.svg", "zip_absolute_path"),
    ],
)
def test_unsafe_names_are_refused(name: str, code: str) -> None:
    info = zipfile.ZipInfo("placeholder")
    info.filename = info.orig_filename = name
    raw = zipped([("manifest.json", manifest(icon("a.svg"))), (info, SVG)])
    assert code_of(raw) == code


def test_a_traversing_directory_entry_is_refused() -> None:
    raw = zipped([("manifest.json", manifest(icon("a.svg"))), ("../up/", b""), ("a.svg", SVG)])
    assert code_of(raw) == "zip_path_traversal"


def test_other_compression_methods_and_bad_crcs_are_invalid() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("manifest.json", manifest(icon("a.svg")))
    assert code_of(buffer.getvalue()) == "zip_invalid"
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("manifest.json", manifest(icon("a.svg")))
        archive.writestr("a.svg", SVG)
    raw = bytearray(stored.getvalue())
    at = raw.index(SVG)
    raw[at : at + 4] = b"<SVG"
    assert code_of(bytes(raw)) == "zip_invalid"


def test_a_symlinked_directory_is_refused() -> None:
    info = zipfile.ZipInfo("icons")
    info.external_attr = (stat.S_IFLNK | 0o755) << 16
    raw = zipped([("manifest.json", manifest(icon("a.svg"))), (info, b"/etc")])
    assert code_of(raw) == "zip_symlink"


@pytest.mark.parametrize(
    "document",
    [
        {"version": 2, "icons": [icon("a.svg")]},
        {"version": 1, "icons": []},
        {"version": 1, "icons": [icon("a.txt")]},
        {"version": 1, "icons": [icon("../a.svg")]},
        {"version": 1, "icons": [icon("a.svg", licence="gratis")]},
        {"version": 1, "icons": [icon("a.svg", extra=1)]},
        {"version": 1, "icons": [icon("a.svg"), icon("a.svg")]},
        [],
    ],
)
def test_manifests_that_break_the_schema_are_refused(document: Any) -> None:
    with pytest.raises(ZipRefused) as caught:
        parse_manifest(json.dumps(document).encode())
    assert caught.value.code == "import_manifest_invalid"


def test_the_import_on_the_memory_store_creates_once_and_reports_once() -> None:
    apps = build_applications(None)
    bus = CommandBus(apps, ROUTES)
    store = MemoryObjectStore()
    importer = ZipImporter(SvgIngestion(apps, bus, store, SvgLimits()), ZipLimits())
    setup = ctx("owner-1", "contributor")
    family_id = bus.execute(m.CreateFamily(name="F"), setup).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="S", style="line"), setup
    ).aggregate_id
    owner = ctx("owner-1", "contributor", key="k1")
    raw = zipped(
        [
            ("manifest.json", manifest(icon("a.svg"), icon("bad.svg"))),
            ("a.svg", SVG),
            ("bad.svg", (CORPUS / "onload.svg").read_bytes()),
        ]
    )
    first = importer.run(set_id, raw, owner)
    heads = apps.catalog.recorder.max_notification_id()
    again = importer.run(set_id, raw, owner)

    assert not first.replayed
    assert again.replayed
    assert [item["file"] for item in first.report.created] == ["a.svg"]
    assert [(r["file"], r["code"]) for r in first.report.rejected] == [
        ("bad.svg", "svg_event_handler")
    ]
    assert again.report.id == first.report.id
    assert apps.catalog.recorder.max_notification_id() == heads
    assert len(store.objects) == 1
    apps.close()


def test_an_import_report_is_recorded_once_and_by_the_sets_owner_only() -> None:
    apps = build_applications(None)
    bus = CommandBus(apps, ROUTES)
    owner = ctx("owner-2", "contributor")
    family_id = bus.execute(m.CreateFamily(name="F"), owner).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="S", style="line"), owner
    ).aggregate_id
    report = m.ReportImport(set_id=set_id, zip_hash="h", request_key="", created=(), rejected=())
    with pytest.raises(AccessDenied):
        bus.execute(report, ctx("stranger", "contributor"))
    first = bus.execute(report, owner)
    assert first.version == 1
    with pytest.raises(AlreadyExists):
        bus.execute(report, owner)
    apps.close()
