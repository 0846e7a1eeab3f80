"""SVG uploads over HTTP on the real event store and MinIO: stored, recorded, or refused whole.

The API's private bucket is a scratch bucket of this module's own, so "nothing stored" is an
exact check (the bucket holds only what these tests stored).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from api.app import create_app
from commands.policy import Actor
from domain.icon import Icon
from domain.media import SvgOriginal
from infra.bootstrap import Container, bootstrap
from infra.settings import Settings
from pipelines.svg_policy import sanitise_svg
from tests.support import (
    Appended,
    appended_since,
    create_scratch_bucket,
    drop_scratch_bucket,
    log_heads,
    object_keys,
)

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "malicious"
SVG_ROWS = [row for row in csv.DictReader((CORPUS / "expected.csv").open()) if row["kind"] == "svg"]

RAW = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<!-- exported by an editor -->\n"
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"\n'
    b'     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"\n'
    b'     width="32px" height="24" inkscape:version="1.3">\n'
    b'  <defs><linearGradient id="g"><stop offset="0" stop-color="#f00"/></linearGradient></defs>\n'
    b'  <g fill="url(#g)" inkscape:label="layer">\n'
    b'    <path d="M0 0L32 24"/>\n'
    b'    <use xlink:href="#p"/>\n'
    b"  </g>\n"
    b"</svg>\n"
)
NORMALISED = (
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    b' height="24" viewBox="0 0 32 24" width="32"><defs><linearGradient id="g">'
    b'<stop offset="0" stop-color="#f00"/></linearGradient></defs><g fill="url(#g)">'
    b'<path d="M0 0L32 24"/><use xlink:href="#p"/></g></svg>\n'
)
REVISED = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><circle r="20"/></svg>'
REVISED_NORMALISED = (
    b'<svg xmlns="http://www.w3.org/2000/svg" height="48" viewBox="0 0 48 48" width="48">'
    b'<circle r="20"/></svg>\n'
)


@pytest.fixture(scope="module")
def media_container(settings: Settings) -> Iterator[Container]:
    probe = bootstrap(settings)
    bucket = create_scratch_bucket(probe.s3, "iconmarket-test-svg")
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


def new_icon(client: TestClient, headers: dict[str, str]) -> str:  # type: ignore[type-arg]
    family = client.post("/v1/families", json={"name": "Media"}, headers=headers).json()
    icon_set = client.post(
        f"/v1/families/{family['id']}/sets", json={"name": "S", "style": "line"}, headers=headers
    ).json()
    icon = client.post(
        f"/v1/sets/{icon_set['id']}/icons",
        json={"name": "Glyph", "price": {"amount_minor": 100, "currency": "USD"}},
        headers=headers,
    ).json()
    return str(icon["id"])


def form_upload(ticket: dict[str, Any], data: bytes) -> httpx.Response:
    """What a browser does with an upload ticket: POST its fields, then the file."""
    return httpx.post(
        ticket["url"],
        data=ticket["fields"],
        files={"file": ("icon.svg", data, ticket["content_type"])},
    )


def traced(headers: dict[str, str]) -> tuple[dict[str, str], str]:
    correlation = f"media-{uuid.uuid4().hex}"
    return {**headers, "X-Correlation-ID": correlation}, correlation


@pytest.fixture
def owner(media_container: Container) -> dict[str, str]:
    return auth(media_container, f"contrib-{uuid.uuid4().hex[:8]}", "contributor")


def test_upload_stores_the_normalised_svg_and_records_the_original(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    apps = media_container.applications
    heads = log_heads(apps)
    headers, correlation = traced({**owner, "Content-Type": "image/svg+xml"})

    response = client.put(f"/v1/icons/{icon_id}/svg", content=RAW, headers=headers)

    content_hash = hashlib.sha256(NORMALISED).hexdigest()
    key = f"originals/{content_hash}.svg"
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {
        "id": icon_id,
        "version": 2,
        "position": body["position"],
        "key": key,
        "content_hash": content_hash,
        "size_bytes": len(NORMALISED),
        "width": 32,
        "height": 24,
    }
    assert media_container.private_store.get_bytes(key) == NORMALISED
    head = media_container.s3.head_object(Bucket=media_container.private_store.bucket, Key=key)
    assert head["ContentType"] == "image/svg+xml"
    assert appended_since(apps, heads, correlation) == [
        Appended("catalog", "Icon.OriginalRecorded", uuid.UUID(icon_id), 2, body["position"])
    ]
    icon = apps.catalog.repository.get(uuid.UUID(icon_id))
    assert isinstance(icon, Icon)
    estimate = sanitise_svg(RAW).render_cost
    assert icon.original == SvgOriginal(key, content_hash, len(NORMALISED), 32, 24, estimate)


def test_a_second_upload_revises_the_svg(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    first = client.put(
        f"/v1/icons/{icon_id}/svg",
        content=RAW,
        headers={**owner, "Content-Type": "image/svg+xml"},
    )
    assert first.status_code == 202
    apps = media_container.applications
    heads = log_heads(apps)
    headers, correlation = traced(owner)

    second = client.put(
        f"/v1/icons/{icon_id}/svg",
        files={"file": ("icon.svg", REVISED, "image/svg+xml")},
        headers=headers,
    )

    content_hash = hashlib.sha256(REVISED_NORMALISED).hexdigest()
    assert second.status_code == 202, second.text
    assert second.json()["content_hash"] == content_hash
    assert (second.json()["width"], second.json()["height"]) == (48, 48)
    assert appended_since(apps, heads, correlation) == [
        Appended("catalog", "Icon.SvgRevised", uuid.UUID(icon_id), 3, second.json()["position"])
    ]
    icon = apps.catalog.repository.get(uuid.UUID(icon_id))
    assert isinstance(icon, Icon)
    assert icon.svg_revision == 2
    assert icon.original == SvgOriginal(
        f"originals/{content_hash}.svg",
        content_hash,
        len(REVISED_NORMALISED),
        48,
        48,
        sanitise_svg(REVISED).render_cost,
    )
    assert media_container.private_store.get_bytes(icon.original.key) == REVISED_NORMALISED


def test_a_repeated_upload_with_its_idempotency_key_replays(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    headers = {**owner, "Content-Type": "image/svg+xml", "Idempotency-Key": uuid.uuid4().hex}
    first = client.put(f"/v1/icons/{icon_id}/svg", content=REVISED, headers=headers)
    apps = media_container.applications
    heads = log_heads(apps)
    again_headers, correlation = traced(headers)
    again = client.put(f"/v1/icons/{icon_id}/svg", content=REVISED, headers=again_headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert appended_since(apps, heads, correlation) == []


def test_a_non_owner_is_refused_and_nothing_is_stored(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    stranger = auth(media_container, f"other-{uuid.uuid4().hex[:8]}", "contributor")
    unique = REVISED.replace(b"<circle", f'<circle id="x{uuid.uuid4().hex}"'.encode())
    apps = media_container.applications
    heads = log_heads(apps)
    keys = object_keys(media_container.s3, media_container.private_store.bucket)
    headers, correlation = traced({**stranger, "Content-Type": "image/svg+xml"})

    response = client.put(f"/v1/icons/{icon_id}/svg", content=unique, headers=headers)
    ticket = client.post(f"/v1/icons/{icon_id}/svg/uploads", headers=headers)

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert ticket.status_code == 403
    assert appended_since(apps, heads, correlation, watched={uuid.UUID(icon_id)}) == []
    assert object_keys(media_container.s3, media_container.private_store.bucket) == keys


def test_an_unsupported_media_type_is_415(
    client: TestClient,  # type: ignore[type-arg]
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    response = client.put(
        f"/v1/icons/{icon_id}/svg", content=REVISED, headers={**owner, "Content-Type": "text/html"}
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_a_presigned_upload_is_sanitised_like_a_direct_one(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    ticket = client.post(f"/v1/icons/{icon_id}/svg/uploads", headers=owner)
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    assert (body["method"], body["content_type"]) == ("POST", "image/svg+xml")
    assert body["max_bytes"] == media_container.settings.svg_max_bytes
    assert body["fields"]["key"] == f"incoming/{icon_id}/{body['upload_id']}.svg"
    assert form_upload(body, RAW).status_code == 204
    apps = media_container.applications
    heads = log_heads(apps)
    headers, correlation = traced(owner)

    done = client.post(body["complete_url"], headers=headers)

    content_hash = hashlib.sha256(NORMALISED).hexdigest()
    assert done.status_code == 202, done.text
    assert done.json()["content_hash"] == content_hash
    assert appended_since(apps, heads, correlation) == [
        Appended("catalog", "Icon.OriginalRecorded", uuid.UUID(icon_id), 2, done.json()["position"])
    ]
    store = media_container.private_store
    assert store.get_bytes(f"originals/{content_hash}.svg") == NORMALISED
    assert object_keys(media_container.s3, store.bucket, f"incoming/{icon_id}/") == set()
    again = client.post(body["complete_url"], headers=owner)
    assert again.status_code == 422
    assert again.json()["code"] == "upload_missing"


def test_a_hostile_presigned_upload_is_refused_and_its_staged_copy_dropped(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    body = client.post(f"/v1/icons/{icon_id}/svg/uploads", headers=owner).json()
    hostile = (CORPUS / "script.svg").read_bytes()
    assert form_upload(body, hostile).status_code == 204
    store = media_container.private_store
    keys = object_keys(media_container.s3, store.bucket, "originals/")
    apps = media_container.applications
    heads = log_heads(apps)
    headers, correlation = traced(owner)

    done = client.post(body["complete_url"], headers=headers)

    assert done.status_code == 422
    assert done.json()["code"] == "svg_script"
    assert appended_since(apps, heads, correlation, watched={uuid.UUID(icon_id)}) == []
    assert object_keys(media_container.s3, store.bucket, "originals/") == keys
    assert object_keys(media_container.s3, store.bucket, f"incoming/{icon_id}/") == set()


@pytest.mark.parametrize("row", SVG_ROWS, ids=[row["file"] for row in SVG_ROWS])
def test_every_malicious_svg_is_refused_with_its_code_and_nothing_is_written(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
    row: dict[str, Any],
) -> None:
    icon_id = new_icon(client, owner)
    apps = media_container.applications
    heads = log_heads(apps)
    bucket = media_container.private_store.bucket
    keys = object_keys(media_container.s3, bucket)
    headers, correlation = traced({**owner, "Content-Type": "image/svg+xml"})

    response = client.put(
        f"/v1/icons/{icon_id}/svg", content=(CORPUS / row["file"]).read_bytes(), headers=headers
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == row["code"]
    assert appended_since(apps, heads, correlation, watched={uuid.UUID(icon_id)}) == []
    assert object_keys(media_container.s3, bucket) == keys


def test_uploading_the_current_drawing_again_is_a_conflict_and_appends_nothing(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    headers = {**owner, "Content-Type": "image/svg+xml"}
    assert client.put(f"/v1/icons/{icon_id}/svg", content=RAW, headers=headers).status_code == 202
    apps = media_container.applications
    heads = log_heads(apps)
    traced_headers, correlation = traced(headers)
    reordered = RAW.replace(b'width="32px" height="24"', b'height="24" width="32"')

    again = client.put(f"/v1/icons/{icon_id}/svg", content=reordered, headers=traced_headers)

    assert again.status_code == 409
    assert again.json()["code"] == "svg_unchanged"
    assert appended_since(apps, heads, correlation, watched={uuid.UUID(icon_id)}) == []


def test_unknown_icons_anonymous_callers_and_customers_are_refused(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    svg_type = {"Content-Type": "image/svg+xml"}
    unknown = client.put(
        f"/v1/icons/{uuid.uuid4()}/svg", content=REVISED, headers={**owner, **svg_type}
    )
    anonymous = client.put(f"/v1/icons/{icon_id}/svg", content=REVISED, headers=svg_type)
    customer = auth(media_container, f"cust-{uuid.uuid4().hex[:8]}", "customer")
    shopper = client.put(
        f"/v1/icons/{icon_id}/svg", content=REVISED, headers={**customer, **svg_type}
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")
    assert (shopper.status_code, shopper.json()["code"]) == (403, "forbidden")


class CountedBody:
    """A streamed request body of ``chunks`` of 64 KiB each that counts how many chunks the server
    pulled: 0 means it refused before reading a byte."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b" " * 65_536


def test_a_non_owner_is_refused_before_a_byte_of_the_body_is_read(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    stranger = auth(media_container, f"contrib-{uuid.uuid4().hex[:8]}", "contributor")
    body = CountedBody(chunks=64)  # 4 MiB

    response = client.put(
        f"/v1/icons/{icon_id}/svg",
        content=body,
        headers={**stranger, "Content-Type": "image/svg+xml"},
    )

    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert body.pulled == 0


def test_a_body_past_the_limit_is_refused_from_its_length_or_as_it_streams(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    limit = media_container.settings.svg_max_bytes
    icon_id = new_icon(client, owner)
    headers, correlation = traced({**owner, "Content-Type": "image/svg+xml"})
    heads = log_heads(media_container.applications)
    keys_before = object_keys(media_container.s3, media_container.settings.s3_bucket_private)

    declared = client.put(f"/v1/icons/{icon_id}/svg", content=b" " * (limit + 1), headers=headers)
    streamed_body = CountedBody(chunks=64)  # no Content-Length: chunked, 4 MiB
    streamed = client.put(f"/v1/icons/{icon_id}/svg", content=streamed_body, headers=headers)

    for response in (declared, streamed):
        assert (response.status_code, response.json()["code"]) == (422, "svg_too_large")
        assert response.json()["detail"] == f"the upload is larger than {limit} bytes"
    assert appended_since(media_container.applications, heads, correlation) == []
    assert object_keys(media_container.s3, media_container.settings.s3_bucket_private) == (
        keys_before
    )


def test_a_presigned_upload_past_the_limit_is_refused_by_the_store_and_stale_ones_are_swept(
    client: TestClient,  # type: ignore[type-arg]
    media_container: Container,
    owner: dict[str, str],
) -> None:
    icon_id = new_icon(client, owner)
    store = media_container.private_store
    staged = f"incoming/{icon_id}/"
    ticket = client.post(f"/v1/icons/{icon_id}/svg/uploads", headers=owner).json()
    too_large = form_upload(ticket, RAW + b" " * ticket["max_bytes"])
    assert too_large.status_code == 400
    assert "EntityTooLarge" in too_large.text
    assert object_keys(media_container.s3, store.bucket, staged) == set()

    abandoned = client.post(f"/v1/icons/{icon_id}/svg/uploads", headers=owner).json()
    assert form_upload(abandoned, RAW).status_code == 204  # and never completed
    ingestion = media_container.svg_ingestion
    assert ingestion.sweep_staged() == 0  # younger than its URL's lifetime: kept
    assert object_keys(media_container.s3, store.bucket, staged) == {abandoned["fields"]["key"]}
    expired = dataclasses.replace(ingestion, upload_url_ttl_s=0)
    assert expired.sweep_staged(grace_s=0) >= 1
    assert object_keys(media_container.s3, store.bucket, staged) == set()
