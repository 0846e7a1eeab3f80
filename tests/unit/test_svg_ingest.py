"""The upload path on the in-memory store: order of checks, first upload vs revision, retries."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest

from commands import messages as m
from commands.applications import Applications, build_applications
from commands.bus import CommandBus
from commands.errors import AccessDenied
from commands.routes import ROUTES
from domain.errors import InvariantViolated
from domain.icon import Icon
from pipelines.errors import MediaRefused, SvgRefused
from pipelines.svg_ingest import SvgIngestion, incoming_key
from pipelines.svg_policy import SvgLimits, sanitise_svg
from tests.fakes.object_store import MemoryObjectStore
from tests.support import ctx

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle r="4"/></svg>'
OTHER = SVG.replace(b'r="4"', b'r="5"')


@pytest.fixture
def apps() -> Iterator[Applications]:
    built = build_applications(None)
    yield built
    built.close()


def setup(apps: Applications) -> tuple[SvgIngestion, MemoryObjectStore, UUID]:
    bus = CommandBus(apps, ROUTES)
    store = MemoryObjectStore()
    owner = ctx("owner", "contributor")
    family_id = bus.execute(m.CreateFamily(name="F"), owner).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="S", style="line"), owner
    ).aggregate_id
    icon_id = bus.execute(
        m.CreateIcon(set_id=set_id, name="I", price=m.Money(amount_minor=1, currency="USD")),
        owner,
    ).aggregate_id
    return SvgIngestion(apps, bus, store, SvgLimits()), store, icon_id


def icon(apps: Applications, icon_id: UUID) -> Icon:
    found = apps.catalog.repository.get(icon_id)
    assert isinstance(found, Icon)
    return found


def test_first_upload_records_later_uploads_revise(apps: Applications) -> None:
    ingestion, store, icon_id = setup(apps)
    first = ingestion.upload(icon_id, SVG, ctx("owner", "contributor"))
    second = ingestion.upload(icon_id, OTHER, ctx("owner", "contributor"))
    assert (first.result.version, second.result.version) == (2, 3)
    assert icon(apps, icon_id).svg_revision == 2
    assert set(store.objects) == {first.svg.key, second.svg.key}
    assert store.objects[second.svg.key] == (sanitise_svg(OTHER).data, "image/svg+xml")


def test_a_retried_first_upload_replays_even_though_the_original_now_exists(
    apps: Applications,
) -> None:
    ingestion, _store, icon_id = setup(apps)
    first = ingestion.upload(icon_id, SVG, ctx("owner", "contributor", key="k"))
    again = ingestion.upload(icon_id, SVG, ctx("owner", "contributor", key="k"))
    assert again.result.replayed
    assert (again.result.aggregate_id, again.result.version) == (icon_id, first.result.version)
    assert icon(apps, icon_id).version == 2


def test_refusals_store_nothing(apps: Applications) -> None:
    ingestion, store, icon_id = setup(apps)
    with pytest.raises(AccessDenied):
        ingestion.upload(icon_id, SVG, ctx("stranger", "contributor"))
    with pytest.raises(SvgRefused):
        ingestion.upload(icon_id, b"<svg onload='x()'/>", ctx("owner", "contributor"))
    assert store.objects == {}
    assert icon(apps, icon_id).version == 1


def test_a_retired_icon_is_refused_before_anything_is_stored(apps: Applications) -> None:
    ingestion, store, icon_id = setup(apps)
    ingestion.bus.execute(m.RetireIcon(icon_id=icon_id), ctx("owner", "contributor"))
    with pytest.raises(InvariantViolated) as caught:
        ingestion.upload(icon_id, SVG, ctx("owner", "contributor"))
    assert caught.value.code == "icon_retired"
    assert store.objects == {}


def test_presigned_uploads_are_completed_from_the_staging_key_and_dropped(
    apps: Applications,
) -> None:
    ingestion, store, icon_id = setup(apps)
    owner = ctx("owner", "contributor")
    ticket = ingestion.presign(icon_id, owner)
    staged = incoming_key(icon_id, ticket.upload_id)
    assert ticket.url.startswith("memory://memory?method=POST")
    assert ticket.fields == {"key": staged, "Content-Type": "image/svg+xml"}
    assert ticket.max_bytes == ingestion.limits.max_bytes
    store.put_bytes(staged, SVG, content_type="image/svg+xml")
    done = ingestion.complete(icon_id, ticket.upload_id, owner)
    assert set(store.objects) == {done.svg.key}
    with pytest.raises(MediaRefused) as missing:
        ingestion.complete(icon_id, ticket.upload_id, owner)
    assert missing.value.code == "upload_missing"
    with pytest.raises(MediaRefused) as malformed:
        ingestion.complete(icon_id, "../../originals/x", owner)
    assert malformed.value.code == "upload_missing"
