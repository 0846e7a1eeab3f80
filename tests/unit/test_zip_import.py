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
from domain.errors import IllegalTransition
from domain.icon_import import ImportStatus
from pipelines.errors import ZipRefused
from pipelines.import_batch import ZipImporter, staged_zip_key
from pipelines.svg_ingest import SvgIngestion
from pipelines.svg_policy import SvgLimits
from pipelines.zip_import import ManifestIcon, ZipLimits, parse_manifest, read_batch
from tests.fakes.object_store import MemoryObjectStore
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


def _shelf(owner_id: str) -> tuple[Any, CommandBus, MemoryObjectStore, ZipImporter, Any]:
    apps = build_applications(None)
    bus = CommandBus(apps, ROUTES)
    store = MemoryObjectStore()
    importer = ZipImporter(SvgIngestion(apps, bus, store, SvgLimits()), ZipLimits())
    setup = ctx(owner_id, "contributor")
    family_id = bus.execute(m.CreateFamily(name="F"), setup).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="S", style="line"), setup
    ).aggregate_id
    return apps, bus, store, importer, set_id


def test_a_request_stages_the_zip_and_records_a_pending_import_and_nothing_else() -> None:
    apps, _bus, store, importer, set_id = _shelf("owner-0")
    owner = ctx("owner-0", "contributor", key="k0")
    raw = zipped([("manifest.json", manifest(icon("a.svg"))), ("a.svg", SVG)])
    head = apps.catalog.recorder.max_notification_id() or 0

    requested = importer.request(set_id, raw, owner)

    found = requested.report
    assert (found.status, found.created, found.rejected) == (ImportStatus.PENDING, (), ())
    assert found.zip_key == staged_zip_key(found.id)
    assert found.roles == ("contributor",)
    assert found.requested_by == "owner-0"
    assert store.get_bytes(found.zip_key) == raw
    assert set(store.objects) == {found.zip_key}
    assert requested.result.position == head + 1  # the request's one event
    again = importer.request(set_id, raw, owner)
    assert again.replayed
    assert (again.result.aggregate_id, again.result.position) == (found.id, head + 1)
    assert apps.catalog.recorder.max_notification_id() == head + 1
    with pytest.raises(AccessDenied):
        importer.request(set_id, zipped([("manifest.json", b"{}")]), ctx("x", "contributor"))
    assert set(store.objects) == {found.zip_key}
    apps.close()


def test_the_import_on_the_memory_store_creates_once_and_reports_once() -> None:
    apps, _bus, store, importer, set_id = _shelf("owner-1")
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
    assert first.report.status is ImportStatus.DONE
    assert [item["file"] for item in first.report.created] == ["a.svg"]
    assert [(r["file"], r["code"]) for r in first.report.rejected] == [
        ("bad.svg", "svg_event_handler")
    ]
    assert again.report.id == first.report.id
    assert apps.catalog.recorder.max_notification_id() == heads
    assert len(store.objects) == 1  # the original; the staged zip is deleted
    assert not store.exists(first.report.zip_key)
    apps.close()


def test_processing_again_replays_every_step_and_creates_nothing_twice() -> None:
    apps, _bus, _store, importer, set_id = _shelf("owner-3")
    owner = ctx("owner-3", "contributor")
    raw = zipped([("manifest.json", manifest(icon("a.svg"), icon("b.svg"))), ("a.svg", SVG)])
    import_id = importer.request(set_id, raw, owner).report.id
    done = importer.process(import_id)
    assert done is not None
    head = apps.catalog.recorder.max_notification_id()

    assert importer.process(import_id) == done  # a redelivery: done already
    assert apps.catalog.recorder.max_notification_id() == head
    assert done.status is ImportStatus.DONE
    assert [item["file"] for item in done.created] == ["a.svg"]
    assert [(r["file"], r["code"]) for r in done.rejected] == [("b.svg", "import_file_missing")]
    apps.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not a zip at all", "zip_invalid"),
        (
            zipped([("../up.svg", SVG), ("manifest.json", manifest(icon("a.svg")))]),
            "zip_path_traversal",
        ),
        (zipped([("manifest.json", b'{"version": 1}')]), "import_manifest_invalid"),
    ],
    ids=["not-a-zip", "traversal", "bad-manifest"],
)
def test_a_zip_refused_as_a_whole_is_an_import_refused_with_the_rule_and_creates_nothing(
    raw: bytes, code: str
) -> None:
    apps, _bus, store, importer, set_id = _shelf("owner-4")
    owner = ctx("owner-4", "contributor")
    requested = importer.request(set_id, raw, owner)  # no zip rule is checked in the request
    head = apps.catalog.recorder.max_notification_id() or 0

    done = importer.process(requested.report.id)

    assert done is not None
    assert done.status is ImportStatus.REFUSED
    assert done.refusal is not None
    assert done.refusal["code"] == code
    assert (done.created, done.rejected) == ((), ())
    assert apps.catalog.recorder.max_notification_id() == head + 1  # ImportRefused only
    assert store.objects == {}
    with pytest.raises(ZipRefused) as caught:
        importer.run(set_id, raw, ctx("owner-4", "contributor", key="again"))
    assert caught.value.code == code
    apps.close()


def test_a_staged_zip_that_is_gone_is_refused_and_old_staged_zips_are_swept() -> None:
    apps, _bus, store, importer, set_id = _shelf("owner-5")
    owner = ctx("owner-5", "contributor")
    raw = zipped([("manifest.json", manifest(icon("a.svg"))), ("a.svg", SVG)])
    gone = importer.request(set_id, raw, owner).report
    store.delete(gone.zip_key)
    done = importer.process(gone.id)
    assert done is not None
    assert done.refusal is not None
    assert (done.status, done.refusal["code"]) == (ImportStatus.REFUSED, "import_zip_missing")

    kept = importer.request(set_id, raw, ctx("owner-5", "contributor", key="k2")).report
    assert importer.sweep_staged() == 0
    store.written[kept.zip_key] -= importer.staged_ttl_s + 1
    assert importer.sweep_staged() == 1
    assert store.objects == {}
    apps.close()


def test_an_import_is_requested_once_and_reported_by_the_sets_owner_only() -> None:
    apps, bus, _store, _importer, set_id = _shelf("owner-2")
    owner = ctx("owner-2", "contributor")
    request = m.RequestImport(
        set_id=set_id, zip_hash="h", request_key="", zip_key="imports/x.zip", size_bytes=1
    )
    with pytest.raises(AccessDenied):
        bus.execute(request, ctx("stranger", "contributor"))
    first = bus.execute(request, owner)
    assert first.version == 1
    with pytest.raises(AlreadyExists):
        bus.execute(request, owner)
    report = m.CompleteImport(import_id=first.aggregate_id, created=(), rejected=())
    with pytest.raises(AccessDenied):
        bus.execute(report, ctx("stranger", "contributor"))
    assert bus.execute(report, owner).version == 2
    with pytest.raises(IllegalTransition):
        bus.execute(m.RefuseImport(import_id=first.aggregate_id, code="c", detail="d"), owner)
    apps.close()
