"""Zip batch imports over HTTP on the real event store and MinIO (a scratch bucket of its own)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from commands.policy import Actor
from domain.icon import Icon
from domain.icon_import import import_id_for
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from pipelines.svg_policy import sanitise_svg
from tests.support import (
    appended_since,
    create_scratch_bucket,
    drop_scratch_bucket,
    log_heads,
    object_keys,
)

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "malicious"
ZIP_ROWS = [row for row in csv.DictReader((CORPUS / "expected.csv").open()) if row["kind"] == "zip"]


def svg(n: int) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
        f'<rect width="{n}" height="{n}"/></svg>'
    ).encode()


def batch(files: dict[str, bytes], icons: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps({"version": 1, "icons": icons}))
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def entry(file: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "file": file,
        "name": name,
        "price": {"amount_minor": 250, "currency": "USD"},
        **extra,
    }


@pytest.fixture(scope="module")
def media_container(settings: Settings) -> Iterator[Container]:
    probe = bootstrap(settings)
    bucket = create_scratch_bucket(probe.s3, "iconmarket-test-zip")
    built = bootstrap(dataclasses.replace(settings, s3_bucket_private=bucket))
    yield built
    built.close()
    drop_scratch_bucket(probe.s3, bucket)
    probe.close()


@pytest.fixture(scope="module")
def client(media_container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(media_container)) as test_client:
        yield test_client


def auth(container: Container, actor: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(actor, frozenset(roles))).access_token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def owner(media_container: Container) -> dict[str, str]:
    return auth(media_container, f"contrib-{uuid.uuid4().hex[:8]}", "contributor")


def new_set(client: TestClient, headers: dict[str, str]) -> str:  # type: ignore[type-arg]
    family = client.post("/v1/families", json={"name": "Batch"}, headers=headers).json()
    icon_set = client.post(
        f"/v1/families/{family['id']}/sets", json={"name": "S", "style": "line"}, headers=headers
    ).json()
    return str(icon_set["id"])


def traced(headers: dict[str, str]) -> tuple[dict[str, str], str]:
    correlation = f"zip-{uuid.uuid4().hex}"
    return {**headers, "X-Correlation-ID": correlation}, correlation


def test_a_batch_creates_the_valid_icons_and_reports_the_bad_file(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    set_id = new_set(client, owner)
    files = {
        "a.svg": svg(1),
        "icons/b.svg": svg(2),
        "c.svg": svg(3),
        "evil.svg": (CORPUS / "script.svg").read_bytes(),
    }
    icons = [
        entry("a.svg", "Alpha", tags=["arrow"], categories=["ui"], licence="extended"),
        entry("icons/b.svg", "Beta", style="line"),
        entry("evil.svg", "Evil"),
        entry("c.svg", "Gamma"),
    ]
    raw = batch(files, icons)
    key = uuid.uuid4().hex
    apps = media_container.applications
    heads = log_heads(apps)
    headers, correlation = traced(
        {**owner, "Content-Type": "application/zip", "Idempotency-Key": key}
    )

    response = client.post(f"/v1/sets/{set_id}/imports", content=raw, headers=headers)

    assert response.status_code == 201, response.text
    report = response.json()
    import_id = import_id_for(uuid.UUID(set_id), hashlib.sha256(raw).hexdigest(), key)
    assert report["id"] == str(import_id)
    assert [item["file"] for item in report["created"]] == ["a.svg", "icons/b.svg", "c.svg"]
    assert len(report["rejected"]) == 1
    assert report["rejected"][0]["file"] == "evil.svg"
    assert report["rejected"][0]["code"] == "svg_script"
    created = [uuid.UUID(item["icon_id"]) for item in report["created"]]
    appended = appended_since(apps, heads, correlation)
    assert sorted((e.name, e.originator_id) for e in appended) == sorted(
        [("Icon.Created", icon_id) for icon_id in created]
        + [("IconSet.IconAdded", uuid.UUID(set_id)) for _ in created]
        + [("Icon.OriginalRecorded", icon_id) for icon_id in created]
        + [("IconImport.ImportReported", import_id)]
    )
    first = apps.catalog.repository.get(created[0])
    assert isinstance(first, Icon)
    assert (first.name, first.tags, first.categories, first.licence.value) == (
        "Alpha",
        ("arrow",),
        ("ui",),
        "extended",
    )
    assert (first.price.amount_minor, first.price.currency) == (250, "USD")
    stored = sanitise_svg(svg(1))
    assert first.original is not None
    assert first.original.content_hash == stored.content_hash
    assert media_container.private_store.get_bytes(stored.key) == stored.data
    bucket = media_container.private_store.bucket
    assert {f"originals/{sanitise_svg(svg(n)).content_hash}.svg" for n in (1, 2, 3)} <= object_keys(
        media_container.s3, bucket, "originals/"
    )

    fetched = client.get(f"/v1/imports/{import_id}", headers=owner)
    assert fetched.status_code == 200
    assert {k: v for k, v in fetched.json().items() if k != "position"} == {
        k: v for k, v in report.items() if k != "position"
    }

    again_headers, again_correlation = traced(headers)
    heads_again = log_heads(apps)
    again = client.post(f"/v1/sets/{set_id}/imports", content=raw, headers=again_headers)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["created"] == report["created"]
    assert again.json()["rejected"] == report["rejected"]
    assert appended_since(apps, heads_again, again_correlation, watched=set(created)) == []


def test_a_multipart_batch_reports_missing_unlisted_and_style_mismatches(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    set_id = new_set(client, owner)
    raw = batch(
        {"a.svg": svg(4), "stray.svg": svg(5), "s.svg": svg(6), "eur.svg": svg(7)},
        [
            entry("a.svg", "Alpha"),
            entry("gone.svg", "Gone"),
            entry("s.svg", "Solid", style="solid"),
            entry("eur.svg", "Blank tag", tags=["   "]),
        ],
    )
    response = client.post(
        f"/v1/sets/{set_id}/imports", files={"file": ("batch.zip", raw)}, headers=owner
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [item["file"] for item in body["created"]] == ["a.svg"]
    assert [(item["file"], item["code"]) for item in body["rejected"]] == [
        ("stray.svg", "import_file_unlisted"),
        ("gone.svg", "import_file_missing"),
        ("s.svg", "import_style_mismatch"),
        ("eur.svg", "invalid_label"),
    ]


def test_only_the_sets_owner_may_import_or_read_a_report(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    set_id = new_set(client, owner)
    raw = batch({"a.svg": svg(8)}, [entry("a.svg", "Alpha")])
    stranger = auth(media_container, f"other-{uuid.uuid4().hex[:8]}", "contributor")
    apps = media_container.applications
    heads = log_heads(apps)
    keys = object_keys(media_container.s3, media_container.private_store.bucket)
    headers, correlation = traced({**stranger, "Content-Type": "application/zip"})

    refused = client.post(f"/v1/sets/{set_id}/imports", content=raw, headers=headers)

    assert refused.status_code == 403
    assert appended_since(apps, heads, correlation) == []
    assert object_keys(media_container.s3, media_container.private_store.bucket) == keys
    mine = client.post(
        f"/v1/sets/{set_id}/imports",
        content=raw,
        headers={**owner, "Content-Type": "application/zip"},
    )
    assert mine.status_code == 201
    assert client.get(f"/v1/imports/{mine.json()['id']}", headers=stranger).status_code == 403
    assert client.get(f"/v1/imports/{uuid.uuid4()}", headers=owner).status_code == 404


def test_the_manifest_schema_is_served(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/v1/schemas/import-manifest.json")
    assert response.status_code == 200
    assert response.json()["$id"] == "https://iconmarket.dev/schemas/import-manifest.json"


@pytest.mark.parametrize("row", ZIP_ROWS, ids=[row["file"] for row in ZIP_ROWS])
def test_every_malicious_zip_is_refused_whole_and_nothing_is_written(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
    row: dict[str, Any],
) -> None:
    set_id = new_set(client, owner)
    apps = media_container.applications
    heads = log_heads(apps)
    bucket = media_container.private_store.bucket
    keys = object_keys(media_container.s3, bucket)
    headers, correlation = traced({**owner, "Content-Type": "application/zip"})

    response = client.post(
        f"/v1/sets/{set_id}/imports", content=(CORPUS / row["file"]).read_bytes(), headers=headers
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == row["code"]
    assert appended_since(apps, heads, correlation) == []
    assert object_keys(media_container.s3, bucket) == keys


def test_a_strangers_zip_is_refused_before_it_is_read_and_an_oversized_one_from_its_length(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    set_id = new_set(client, owner)
    limit = media_container.settings.zip_max_bytes
    stranger = auth(media_container, f"other-{uuid.uuid4().hex[:8]}", "contributor")
    oversized = b"\0" * (limit + 1)

    theirs = client.post(
        f"/v1/sets/{set_id}/imports",
        content=oversized,
        headers={**stranger, "Content-Type": "application/zip"},
    )
    mine = client.post(
        f"/v1/sets/{set_id}/imports",
        content=oversized,
        headers={**owner, "Content-Type": "application/zip"},
    )

    assert (theirs.status_code, theirs.json()["code"]) == (403, "forbidden")
    assert (mine.status_code, mine.json()["code"]) == (422, "zip_too_large")
    assert mine.json()["detail"] == f"the upload is larger than {limit} bytes"
