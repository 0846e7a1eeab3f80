"""Zip imports on the real event store and MinIO: an entry whose estimated render cost is past
the budget is reported as ``svg_too_costly`` and creates, stores and appends nothing, while the
honest entries of the same batch are imported. (Uploads of the costly fixtures through
``PUT /v1/icons/{id}/svg`` are covered by the corpus test of test_svg_upload.py.)"""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands import messages as m
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from pipelines.svg_policy import SvgLimits, sanitise_svg
from tests.support import (
    appended_since,
    create_scratch_bucket,
    ctx,
    drop_scratch_bucket,
    log_heads,
    object_keys,
)

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
COSTLY = ("heavy_path_use.svg", "filter_chain.svg", "mask_canvas_bomb.svg")


@pytest.fixture(scope="module")
def media_container(settings: Settings) -> Iterator[Container]:
    probe = bootstrap(settings)
    bucket = create_scratch_bucket(probe.s3, "iconmarket-test-cost")
    built = bootstrap(dataclasses.replace(settings, s3_bucket_private=bucket))
    yield built
    built.close()
    drop_scratch_bucket(probe.s3, bucket)
    probe.close()


def _zip(files: dict[str, bytes]) -> bytes:
    icons = [
        {"file": name, "name": f"icon {n}", "price": {"amount_minor": 100, "currency": "USD"}}
        for n, name in enumerate(files)
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps({"version": 1, "icons": icons}))
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_costly_entries_are_reported_as_too_costly_and_leave_nothing_behind(
    media_container: Container,
) -> None:
    owner = ctx(f"cost-{uuid.uuid4().hex[:8]}", "contributor")
    bus = media_container.bus
    family_id = bus.execute(m.CreateFamily(name="Costs"), owner).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="Costs", style="line"), owner
    ).aggregate_id
    honest = (FIXTURES / "honest" / "shadow_card.svg").read_bytes()
    costly = {name: (FIXTURES / "malicious" / name).read_bytes() for name in COSTLY}
    raw = _zip({"honest.svg": honest, **costly})
    unbounded = SvgLimits(max_render_cost=10**15)
    costly_keys = {sanitise_svg(data, unbounded).key for data in costly.values()}
    apps = media_container.applications
    heads = log_heads(apps)
    bucket = media_container.private_store.bucket

    outcome = media_container.zip_importer.run(set_id, raw, owner)

    report = outcome.report
    assert [item["file"] for item in report.created] == ["honest.svg"]
    assert [(item["file"], item["code"]) for item in report.rejected] == [
        (name, "svg_too_costly") for name in COSTLY
    ]
    for item in report.rejected:
        assert item["detail"].startswith("the estimated render cost exceeds the budget of")
    (icon_id,) = [uuid.UUID(item["icon_id"]) for item in report.created]
    appended = appended_since(apps, heads, owner.correlation_id)
    assert sorted(e.name for e in appended) == [
        "Icon.Created",
        "Icon.OriginalRecorded",
        "IconImport.ImportCompleted",
        "IconImport.ImportRequested",
        "IconSet.IconAdded",
    ]
    assert {e.originator_id for e in appended if e.name.startswith("Icon.")} == {icon_id}
    assert object_keys(media_container.s3, bucket, "originals/") == {sanitise_svg(honest).key}
    assert costly_keys.isdisjoint(object_keys(media_container.s3, bucket))
