"""A quarantined icon as its owner sees it, on the real event store, MinIO, OpenSearch and render
processes: a zip whose costly entry slipped past the estimate (the budget is raised for this
test) is imported; the media worker renders the honest entry and quarantines the costly one at
its CPU deadline; once the catalog read model has the events, ``GET /v1/icons/{id}/media``
shows the owner each icon's render state (and only the owner) and ``GET /v1/imports/{id}``
lists the quarantined entry. The event store is this test's own, so no media worker or relay of
another test on the stack sees these icons."""

from __future__ import annotations

import dataclasses
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
from commands import messages as m
from commands.policy import Actor
from infra.bootstrap import Container
from infra.settings import Settings
from pipelines.derivatives import MediaStores
from pipelines.media_worker import MediaWorker
from pipelines.render import RENDERER_VERSION
from pipelines.render_pool import RenderPool
from projections.catalog import apply
from projections.catalog_alias import CATALOG_ALIAS, ensure_live_index
from projections.catalog_view import OpenSearchCatalogView
from stream.consumer import Delivery
from stream.envelope import Envelope, encode, to_envelope
from tests.faults.harness import scratch_container
from tests.support import appended_since, ctx, log_heads

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="module")
def lenient(settings: Settings) -> Iterator[Container]:
    """A container whose budget lets the costly fixture in, on an event store of its own."""
    raised = dataclasses.replace(settings, svg_max_render_cost=10**15)
    with scratch_container(raised, "iconmarket_quarantine") as container:
        yield container


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


def _envelopes(container: Container, since: int) -> list[Envelope]:
    app = container.applications.catalog
    return [
        to_envelope("catalog", n.id, app.mapper.to_domain_event(n))
        for n in app.recorder.select_notifications(since + 1, 10_000)
    ]


def _delivery(envelope: Envelope, offset: int) -> Delivery:
    return Delivery(
        topic="catalog",
        partition=0,
        offset=offset,
        key=envelope.aggregate_id.encode(),
        value=encode(envelope),
        headers={},
        raw_headers=(),
        envelope=envelope,
    )


def _bearer(container: Container, who: str, *roles: str) -> dict[str, str]:
    token = container.tokens.issue(Actor(who, frozenset(roles))).access_token
    return {"Authorization": f"Bearer {token}"}


def test_the_owner_sees_a_quarantined_icon_and_the_import_report_lists_it(
    lenient: Container,
) -> None:
    owner_id = f"quarantine-{uuid.uuid4().hex[:8]}"
    owner = ctx(owner_id, "contributor")
    bus = lenient.bus
    family_id = bus.execute(m.CreateFamily(name="Quarantine"), owner).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="Q", style="line"), owner
    ).aggregate_id
    marker = f"<!-- {uuid.uuid4().hex} -->".encode()
    honest = (
        (FIXTURES / "honest" / "line_arrow.svg").read_bytes().replace(b"<path", marker + b"<path")
    )
    heavy = (
        (FIXTURES / "malicious" / "heavy_path_use.svg")
        .read_bytes()
        .replace(b"<defs>", marker + b"<defs>", 1)
    )
    since = lenient.applications.catalog.recorder.max_notification_id() or 0
    outcome = lenient.zip_importer.run(
        set_id, _zip({"honest.svg": honest, "heavy.svg": heavy}), owner
    )
    created = {item["file"]: uuid.UUID(item["icon_id"]) for item in outcome.report.created}
    assert sorted(created) == ["heavy.svg", "honest.svg"]
    uploads = [e for e in _envelopes(lenient, since) if e.type == "Icon.OriginalRecorded"]
    assert len(uploads) == 2
    assert all(e.data["original"]["render_cost"] > 0 for e in uploads)

    heads = log_heads(lenient.applications)
    stores = MediaStores(lenient.private_store, lenient.public_store)
    with RenderPool(2, deadline_s=0.5, name="test-quarantine") as pool:
        worker = MediaWorker(bus, stores, renderer=pool)
        worker([_delivery(e, n) for n, e in enumerate(uploads)])
        worker([_delivery(e, n + 2) for n, e in enumerate(uploads)])  # redelivered

    appended = appended_since(lenient.applications, heads, "-", set(created.values()))
    assert sorted((e.name, e.originator_id) for e in appended) == sorted(
        [
            ("Icon.DerivativesRecorded", created["honest.svg"]),
            ("Icon.RenderRefused", created["heavy.svg"]),
        ]
    )
    view = OpenSearchCatalogView(lenient.opensearch, CATALOG_ALIAS)
    ensure_live_index(lenient.opensearch)
    view.apply([w for e in _envelopes(lenient, since) for w in apply(e)])
    lenient.opensearch.indices.refresh(index=CATALOG_ALIAS)

    with TestClient(create_app(lenient)) as client:
        mine = _bearer(lenient, owner_id, "contributor")
        heavy_media = client.get(f"/v1/icons/{created['heavy.svg']}/media", headers=mine)
        honest_media = client.get(f"/v1/icons/{created['honest.svg']}/media", headers=mine)
        stranger = client.get(
            f"/v1/icons/{created['heavy.svg']}/media",
            headers=_bearer(lenient, "someone-else", "contributor"),
        )
        anonymous = client.get(f"/v1/icons/{created['heavy.svg']}/media")
        unknown = client.get(f"/v1/icons/{uuid.uuid4()}/media", headers=mine)
        report = client.get(f"/v1/imports/{outcome.report.id}", headers=mine)

    assert heavy_media.status_code == 200, heavy_media.text
    assert heavy_media.headers["cache-control"] == "private, no-store"
    body: dict[str, Any] = heavy_media.json()
    render = body.pop("render")
    assert body == {
        "id": str(created["heavy.svg"]),
        "set_id": str(set_id),
        "status": "draft",
        "formats": ["svg"],
    }
    assert (render["state"], render["code"], render["renderer_version"]) == (
        "refused",
        "render_timeout",
        RENDERER_VERSION,
    )
    assert render["detail"].endswith("used more than 0.5 s of CPU time")
    assert (
        render["source_hash"]
        == uploads[[e.aggregate_id for e in uploads].index(str(created["heavy.svg"]))].data[
            "original"
        ]["content_hash"]
    )
    assert honest_media.status_code == 200
    assert honest_media.json()["formats"] == ["pdf", "png", "svg", "webp"]
    assert honest_media.json()["render"] == {
        "state": "rendered",
        "code": None,
        "detail": None,
        "source_hash": None,
        "renderer_version": None,
    }
    assert (stranger.status_code, stranger.json()["code"]) == (403, "forbidden")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert report.status_code == 200, report.text
    assert report.json()["render_refused"] == [
        {
            "file": "heavy.svg",
            "icon_id": str(created["heavy.svg"]),
            "code": "render_timeout",
            "detail": render["detail"],
        }
    ]
