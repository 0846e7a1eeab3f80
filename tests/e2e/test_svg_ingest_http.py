"""SVG ingestion through the real server (`iconmarket run`): a multipart upload, a presigned
upload straight to the object store, and a zip batch, checked in the event store and in S3."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from commands.policy import Actor
from domain.icon import Icon
from infra.bootstrap import Container, bootstrap
from pipelines.svg_policy import sanitise_svg
from tests.e2e.test_run import running_app
from tests.support import appended_since, eventually, log_heads

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><path d="M0 0h9"/></svg>'


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[str, Container]]:
    container = bootstrap()
    try:
        with running_app() as base:
            yield base, container
    finally:
        container.close()


def test_uploads_and_a_zip_batch_through_the_running_server(
    running: tuple[str, Container],
) -> None:
    base, container = running
    owner = f"e2e-media-{uuid.uuid4().hex[:6]}"
    token = container.tokens.issue(Actor(owner, frozenset({"contributor"}))).access_token
    correlation = f"e2e-media-{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": correlation}
    apps = container.applications
    heads = log_heads(apps)
    unique = SVG.replace(b"<path", f'<path id="p{uuid.uuid4().hex}"'.encode())
    expected = sanitise_svg(unique)
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        family = client.post("/v1/families", json={"name": "E2E media"}).json()
        icon_set = client.post(
            f"/v1/families/{family['id']}/sets", json={"name": "S", "style": "glyph"}
        ).json()
        icon = client.post(
            f"/v1/sets/{icon_set['id']}/icons",
            json={"name": "Bar", "price": {"amount_minor": 90, "currency": "EUR"}},
        ).json()

        uploaded = client.put(
            f"/v1/icons/{icon['id']}/svg", files={"file": ("bar.svg", unique, "image/svg+xml")}
        )
        assert uploaded.status_code == 202, uploaded.text
        assert uploaded.json()["content_hash"] == expected.content_hash
        assert (uploaded.json()["width"], uploaded.json()["height"]) == (20, 10)

        ticket = client.post(f"/v1/icons/{icon['id']}/svg/uploads").json()
        revised = SVG.replace(b'width="20"', b'width="40"')
        posted = httpx.post(
            ticket["url"],
            data=ticket["fields"],
            files={"file": ("bar.svg", revised, ticket["content_type"])},
        )
        assert posted.status_code == 204, posted.text
        completed = client.post(ticket["complete_url"])
        assert completed.status_code == 202, completed.text
        assert (completed.json()["width"], completed.json()["height"]) == (40, 10)

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as batch:
            icons = [
                {"file": "ok.svg", "name": "Ok", "price": {"amount_minor": 10, "currency": "EUR"}},
                {"file": "no.svg", "name": "No", "price": {"amount_minor": 10, "currency": "EUR"}},
            ]
            batch.writestr("manifest.json", json.dumps({"version": 1, "icons": icons}))
            batch.writestr("ok.svg", unique)
            batch.writestr("no.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="x()"/>')
        imported = client.post(
            f"/v1/sets/{icon_set['id']}/imports",
            content=archive.getvalue(),
            headers={"Content-Type": "application/zip"},
        )
        assert imported.status_code == 202, imported.text
        assert imported.json()["status"] == "pending"
        location = imported.headers["location"]
        assert location == f"/v1/imports/{imported.json()['id']}"
        # The import worker `run` supervises processes it: wait on its status, never sleep.
        report: dict[str, Any] = {}

        def processed() -> bool:
            report.update(client.get(location).json())
            return bool(report["status"] != "pending")

        assert eventually(processed, 120, interval_s=0.2), report
        assert report["status"] == "done"

    assert [item["file"] for item in report["created"]] == ["ok.svg"]
    assert [(item["file"], item["code"]) for item in report["rejected"]] == [
        ("no.svg", "svg_event_handler")
    ]
    assert container.private_store.get_bytes(expected.key) == expected.data
    # The media worker `run` supervises renders what was uploaded under the same correlation id;
    # its events are part B's to check, and may or may not have landed yet.
    rendered = {"Icon.DerivativesRecorded", "IconSet.PreviewRecorded", "Family.PreviewRecorded"}
    names = sorted(
        event.name
        for event in appended_since(apps, heads, correlation)
        if event.name not in rendered
    )
    assert names == sorted(
        [
            *("Family.Created", "IconSet.Created", "Icon.Created", "Icon.OriginalRecorded"),
            *("Icon.SvgRevised", "Icon.Created", "Icon.OriginalRecorded"),
            *("IconSet.IconAdded", "IconSet.IconAdded"),
            *("IconImport.ImportRequested", "IconImport.ImportCompleted"),
        ]
    )
    first = apps.catalog.repository.get(uuid.UUID(icon["id"]))
    assert isinstance(first, Icon)
    assert first.original is not None
    assert first.original.content_hash == hashlib.sha256(sanitise_svg(revised).data).hexdigest()
