"""Golden tests of the renderer's output, and the media worker's logic on in-memory fakes."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from PIL import Image, ImageChops
from pypdf import PdfReader

from commands import messages as m
from commands.applications import Applications, build_applications
from commands.bus import CommandBus
from commands.routes import ROUTES
from domain.icon import Icon
from pipelines.derivatives import (
    MediaStores,
    OriginalMissing,
    OriginalQuarantined,
    RenderJob,
    produce,
    refusal_key,
)
from pipelines.media_worker import InlineRenderer, Lane, MediaWorker, RenderFailed
from pipelines.previews import choose, compose_grid, member_hash, preview_key
from pipelines.render import (
    RENDERER_VERSION,
    Output,
    RenderError,
    RenderParams,
    content_hash,
    outputs,
    render,
    render_all,
)
from pipelines.render_pool import RenderStalled, RenderTimedOut
from stream.consumer import Delivery
from stream.envelope import Envelope, encode, to_envelope
from stream.failures import is_transient
from tests.fakes.object_store import MemoryObjectStore
from tests.support import ctx

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24" '
    b'fill="none" stroke="#1f2937" stroke-width="2"><path d="M4 12h16M14 6l6 6-6 6"/></svg>'
)
WIDE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 24">'
    b'<rect x="2" y="2" width="44" height="20" fill="#e11d48"/></svg>'
)


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_the_full_set_is_png_at_1x_to_4x_webp_pdf_and_a_preview() -> None:
    assert outputs() == (
        Output("png", 64),
        Output("png", 128),
        Output("png", 192),
        Output("png", 256),
        Output("webp", 256),
        Output("pdf", 64),
        Output("preview", 128),
    )


@pytest.mark.parametrize("size", [64, 128, 192, 256])
def test_png_has_the_size_and_a_real_alpha_channel(size: int) -> None:
    image = _image(render(SVG, Output("png", size)))
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (size, size))
    low, high = image.getchannel("A").getextrema()
    assert (low, high) == (0, 255)  # transparent background, opaque strokes


def test_a_wide_svg_keeps_its_aspect_ratio_in_a_square_png() -> None:
    image = _image(render(WIDE, Output("png", 64)))
    assert image.size == (64, 64)
    alpha = image.getchannel("A")
    assert alpha.getpixel((32, 4)) == 0  # letterboxed above the rectangle
    assert alpha.getpixel((32, 32)) == 255


def test_webp_decodes_with_alpha_at_256() -> None:
    image = _image(render(SVG, Output("webp", 256)))
    assert (image.format, image.size) == ("WEBP", (256, 256))
    assert image.mode == "RGBA"
    assert image.getchannel("A").getextrema() == (0, 255)


def test_the_webp_method_is_the_one_the_params_name() -> None:
    fast = render(SVG, Output("webp", 256), RenderParams(webp_method=0))
    default = render(SVG, Output("webp", 256))
    assert fast != default
    assert RenderParams().lineage()["webp_method"] == 4


def test_pdf_is_a_one_page_vector_document() -> None:
    data = render(SVG, Output("pdf", 64))
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == (48.0, 48.0)  # 64 px at 96 dpi, in points


def test_the_preview_is_opaque_watermarked_and_128px() -> None:
    preview = _image(render(SVG, Output("preview", 128)))
    assert (preview.format, preview.mode, preview.size) == ("PNG", "RGB", (128, 128))
    plain = _image(render(SVG, Output("png", 128))).convert("RGBA")
    on_white = Image.alpha_composite(Image.new("RGBA", plain.size, "white"), plain).convert("RGB")
    histogram = ImageChops.difference(preview, on_white).convert("L").histogram()
    differing = sum(histogram[1:])
    assert differing > 500  # the watermark covers the tile, not a few pixels


def test_render_all_matches_one_by_one_rendering() -> None:
    together = render_all(SVG)
    for output in (Output("png", 64), Output("png", 256), Output("webp", 256)):
        assert together[output] == render(SVG, output)


def test_keys_are_deterministic() -> None:
    digest = content_hash(SVG)
    assert Output("png", 128).key(digest) == f"derivatives/{digest}/{RENDERER_VERSION}/png-128.png"
    assert Output("preview", 128).key(digest, "r9") == f"derivatives/{digest}/r9/preview-128.png"
    assert Output("pdf", 64).content_type == "application/pdf"


def test_an_external_reference_is_never_fetched() -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'viewBox="0 0 24 24"><image xlink:href="http://127.0.0.1:9/x.png" width="24" '
        b'height="24"/></svg>'
    )
    with pytest.raises(RenderError, match="fetches nothing"):
        render(svg, Output("png", 64))


def test_an_embedded_raster_renders_without_any_fetch() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (4, 4), (225, 29, 72, 255)).save(buffer, "PNG")
    encoded = base64.b64encode(buffer.getvalue())
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'viewBox="0 0 24 24"><image xlink:href="data:image/png;base64,' + encoded + b'" '
        b'width="24" height="24"/></svg>'
    )
    image = _image(render(svg, Output("png", 64))).convert("RGBA")
    assert image.getpixel((32, 32)) == (225, 29, 72, 255)


def test_an_embedded_svg_is_refused() -> None:
    inner = base64.b64encode(SVG)
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'viewBox="0 0 24 24"><image xlink:href="data:image/svg+xml;base64,' + inner + b'" '
        b'width="24" height="24"/></svg>'
    )
    with pytest.raises(RenderError, match="fetches nothing"):
        render(svg, Output("png", 64))


def test_entities_are_refused() -> None:
    svg = (
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "boom">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><text>&x;</text></svg>'
    )
    with pytest.raises(RenderError):
        render(svg, Output("png", 64))


def test_garbage_is_a_render_error() -> None:
    with pytest.raises(RenderError):
        render(b"not svg at all", Output("png", 64))


# --- the I/O shell and the worker, on in-memory fakes


def _stores() -> MediaStores:
    return MediaStores(MemoryObjectStore("private"), MemoryObjectStore("public"))


def _job(stores: MediaStores, svg: bytes = SVG) -> RenderJob:
    digest = content_hash(svg)
    stores.private.put_bytes(f"originals/{digest}.svg", svg, content_type="image/svg+xml")
    return RenderJob(uuid.uuid4(), digest, f"originals/{digest}.svg", "corr-1")


def test_produce_renders_once_then_only_looks() -> None:
    stores = _stores()
    job = _job(stores)
    first = produce(job, stores)
    assert (first.rendered, first.skipped) == (7, 0)
    private = stores.private
    public = stores.public
    assert isinstance(private, MemoryObjectStore)
    assert isinstance(public, MemoryObjectStore)
    assert sorted(public.objects) == [
        f"derivatives/{job.content_hash}/{RENDERER_VERSION}/preview-128.png"
    ]
    assert len(private.objects) == 1 + 6
    before = dict(private.objects)
    again = produce(job, stores)
    assert (again.rendered, again.skipped) == (0, 7)
    assert again.sizes == first.sizes
    assert private.objects == before
    command = again.command()
    assert [(i.kind, i.size) for i in command.items] == [
        ("png", 64),
        ("png", 128),
        ("png", 192),
        ("png", 256),
        ("webp", 256),
        ("pdf", 64),
    ]
    assert (
        command.preview_key == f"derivatives/{job.content_hash}/{RENDERER_VERSION}/preview-128.png"
    )
    assert dict(command.parameters)["webp_method"] == 4
    assert dict(command.parameters)["scales"] == "1,2,3,4"


def test_a_new_renderer_version_writes_new_keys() -> None:
    stores = _stores()
    job = _job(stores)
    produce(job, stores)
    bumped = produce(job, stores, renderer_version="r-next")
    assert bumped.rendered == 7
    assert all("/r-next/" in key for key, _ in bumped.sizes.values())


def test_a_missing_original_is_reported_not_rendered() -> None:
    stores = _stores()
    job = RenderJob(uuid.uuid4(), "nope", "originals/nope.svg")
    with pytest.raises(OriginalMissing, match=str(job.icon_id)):
        produce(job, stores)


@dataclass
class _World:
    apps: Applications
    bus: CommandBus
    stores: MediaStores
    icon_id: UUID


@pytest.fixture
def world() -> Iterator[_World]:
    apps = build_applications(None)
    bus = CommandBus(apps, ROUTES)
    owner = ctx("carol", "contributor")
    family_id = bus.execute(m.CreateFamily(name="Arrows"), owner).aggregate_id
    set_id = bus.execute(
        m.CreateIconSet(family_id=family_id, name="Line", style="line"), owner
    ).aggregate_id
    icon_id = bus.execute(
        m.CreateIcon(set_id=set_id, name="arrow", price=m.Money(amount_minor=0, currency="USD")),
        owner,
    ).aggregate_id
    yield _World(apps, bus, _stores(), icon_id)
    apps.close()


def _record_original(world: _World, svg: bytes = SVG) -> Envelope:
    job = _job(world.stores, svg)
    original = m.SvgOriginal(
        key=job.original_key,
        content_hash=job.content_hash,
        size_bytes=len(svg),
        width=24,
        height=24,
    )
    world.bus.execute(
        m.RecordOriginal(icon_id=world.icon_id, original=original), ctx("carol", "contributor")
    )
    return _last(world)


def _last(world: _World) -> Envelope:
    app = world.apps.catalog
    head = app.recorder.max_notification_id() or 0
    (notification,) = app.recorder.select_notifications(head, 1)
    return to_envelope("catalog", notification.id, app.mapper.to_domain_event(notification))


def _delivery(envelope: Envelope, offset: int = 0) -> Delivery:
    value = encode(envelope)
    return Delivery(
        topic="t",
        partition=0,
        offset=offset,
        key=envelope.aggregate_id.encode(),
        value=value,
        headers={},
        raw_headers=(),
        envelope=envelope,
    )


def test_the_worker_records_derivatives_with_lineage_once(world: _World) -> None:
    uploaded = _record_original(world)
    worker = MediaWorker(world.bus, world.stores)
    worker([_delivery(uploaded)])
    recorded = _last(world)
    assert recorded.type == "Icon.DerivativesRecorded"
    assert recorded.correlation_id == uploaded.correlation_id
    data: dict[str, Any] = recorded.data
    assert data["source_hash"] == content_hash(SVG)
    assert data["renderer_version"] == RENDERER_VERSION
    assert data["parameters"]["webp_method"] == 4
    assert data["preview_key"].endswith("/preview-128.png")
    assert sorted(item["kind"] for item in data["items"]) == [
        "pdf",
        "png",
        "png",
        "png",
        "png",
        "webp",
    ]
    icon = world.apps.catalog.repository.get(world.icon_id)
    assert isinstance(icon, Icon)
    assert icon.has_current_derivatives
    head = world.apps.catalog.recorder.max_notification_id()
    worker([_delivery(uploaded, offset=1)])  # redelivered
    assert world.apps.catalog.recorder.max_notification_id() == head


def test_derivatives_of_a_revised_original_are_dropped_as_stale(world: _World) -> None:
    uploaded = _record_original(world)
    other = SVG.replace(b"#1f2937", b"#e11d48")
    digest = content_hash(other)
    world.stores.private.put_bytes(f"originals/{digest}.svg", other, content_type="image/svg+xml")
    revised = m.SvgOriginal(
        key=f"originals/{digest}.svg",
        content_hash=digest,
        size_bytes=len(other),
        width=24,
        height=24,
    )
    world.bus.execute(
        m.ReviseSvg(icon_id=world.icon_id, original=revised), ctx("carol", "contributor")
    )
    head = world.apps.catalog.recorder.max_notification_id()
    MediaWorker(world.bus, world.stores)([_delivery(uploaded)])
    assert world.apps.catalog.recorder.max_notification_id() == head


def _appended(world: _World, since: int) -> list[str]:
    app = world.apps.catalog
    return [
        type(app.mapper.to_domain_event(n)).__qualname__
        for n in app.recorder.select_notifications(since + 1, 100)
    ]


def _derivative_keys(world: _World) -> list[str]:
    keys = []
    for store in (world.stores.private, world.stores.public):
        assert isinstance(store, MemoryObjectStore)
        keys += sorted(key for key in store.objects if key.startswith("derivatives/"))
    return keys


@dataclass
class _Counting:
    """A render function that counts its calls and fails each with ``error``."""

    error: Exception
    calls: int = 0

    def __call__(
        self, svg: bytes, wanted: Iterable[Output], params: RenderParams
    ) -> dict[Output, bytes]:
        self.calls += 1
        raise self.error


def test_an_unrenderable_original_is_quarantined_once_with_render_failed(world: _World) -> None:
    uploaded = _record_original(world, b"<svg xmlns='http://www.w3.org/2000/svg'><broken")
    head = world.apps.catalog.recorder.max_notification_id() or 0
    MediaWorker(world.bus, world.stores)([_delivery(uploaded)])
    assert _appended(world, head) == ["Icon.RenderRefused"]
    icon = world.apps.catalog.repository.get(world.icon_id)
    assert isinstance(icon, Icon)
    assert icon.render_refusal is not None
    assert (icon.render_refusal.code.value, icon.is_publishable) == ("render_failed", False)
    assert icon.render_refusal.detail.startswith("unreadable SVG: ")


def test_a_render_past_its_deadline_quarantines_the_icon_once_and_is_never_retried(
    world: _World,
) -> None:
    uploaded = _record_original(world)
    too_slow = _Counting(RenderTimedOut("the png-64 pass used more than 5 s of CPU time"))
    worker = MediaWorker(world.bus, world.stores, renderer=InlineRenderer(too_slow))
    head = world.apps.catalog.recorder.max_notification_id() or 0

    worker([_delivery(uploaded)])
    calls = too_slow.calls
    worker([_delivery(uploaded, offset=1)])  # redelivered
    MediaWorker(world.bus, world.stores)([_delivery(uploaded, offset=2)])  # even by a renderer
    # that would succeed: the refusal marker says this original was quarantined

    assert (calls, too_slow.calls) == (5, 5)  # every pass was submitted once, none again
    assert _appended(world, head) == ["Icon.RenderRefused"]
    icon = world.apps.catalog.repository.get(world.icon_id)
    assert isinstance(icon, Icon)
    assert icon.render_refusal is not None
    assert (icon.render_refusal.code.value, icon.render_refusal.detail) == (
        "render_timeout",
        "the png-64 pass used more than 5 s of CPU time",
    )
    job = _job(world.stores, SVG)
    assert _derivative_keys(world) == [refusal_key(job.content_hash, RENDERER_VERSION)]
    with pytest.raises(OriginalQuarantined, match="render_timeout"):
        produce(job, world.stores)


def test_a_starved_render_is_transient_retried_and_records_nothing(world: _World) -> None:
    uploaded = _record_original(world)
    starved = _Counting(RenderStalled("the png-64 pass got 0.2 s of CPU time in 20 s"))
    head = world.apps.catalog.recorder.max_notification_id() or 0
    worker = MediaWorker(world.bus, world.stores, renderer=InlineRenderer(starved))
    with pytest.raises(RenderFailed, match=f"icon {world.icon_id}: RenderStalled: ") as failed:
        worker([_delivery(uploaded)])
    assert is_transient(failed.value)
    assert _appended(world, head) == []
    assert _derivative_keys(world) == []
    MediaWorker(world.bus, world.stores)([_delivery(uploaded, offset=1)])  # the retry renders
    assert _appended(world, head) == ["Icon.DerivativesRecorded"]


def test_lanes_split_icons_by_their_estimated_render_cost(world: _World) -> None:
    job = _job(world.stores, SVG)
    cheap, costly, unknown = (
        RenderJob(job.icon_id, job.content_hash, job.original_key, render_cost=cost)
        for cost in (30_000, 900_000, None)
    )
    light = MediaWorker(world.bus, world.stores, lane=Lane.LIGHT, heavy_cost=400_000)
    heavy = MediaWorker(world.bus, world.stores, lane=Lane.HEAVY, heavy_cost=400_000)
    every = MediaWorker(world.bus, world.stores)
    assert [light.takes(j) for j in (cheap, costly, unknown)] == [True, False, True]
    assert [heavy.takes(j) for j in (cheap, costly, unknown)] == [False, True, False]
    assert [every.takes(j) for j in (cheap, costly, unknown)] == [True, True, True]


# --- set and family previews (pure parts)


def test_the_grid_holds_up_to_three_columns_of_tiles() -> None:
    tile = render(SVG, Output("preview", 128))
    assert _image(compose_grid([tile])).size == (128 + 16, 128 + 16)
    assert _image(compose_grid([tile] * 4)).size == (3 * 128 + 4 * 8, 2 * 128 + 3 * 8)
    with pytest.raises(ValueError, match="at least one tile"):
        compose_grid([])


def test_members_are_a_stable_choice_with_a_stable_hash() -> None:
    members = {f"icon-{n:02d}": f"key-{n}" for n in range(12)}
    chosen = choose(members)
    assert [member.icon_id for member in chosen] == [f"icon-{n:02d}" for n in range(9)]
    assert member_hash(chosen) == member_hash(choose(dict(reversed(members.items()))))
    moved = choose({**members, "icon-03": "key-new"})
    assert member_hash(moved) != member_hash(chosen)
    assert preview_key("set", "s1", "abc") == "previews/sets/s1/abc.png"
    assert preview_key("family", "f1", "abc") == "previews/families/f1/abc.png"


def test_an_original_missing_from_the_bucket_is_skipped_not_retried(world: _World) -> None:
    uploaded = _record_original(world)
    private = world.stores.private
    assert isinstance(private, MemoryObjectStore)
    private.objects.clear()  # the event names an object the bucket does not hold
    head = world.apps.catalog.recorder.max_notification_id()
    MediaWorker(world.bus, world.stores)([_delivery(uploaded)])
    assert world.apps.catalog.recorder.max_notification_id() == head
    assert private.objects == {}


def test_each_pass_draws_from_a_fresh_parse_so_no_output_depends_on_the_others() -> None:
    # cairosvg changes mask and pattern nodes while drawing: drawn from one shared tree, the
    # PDF of an icon with a mask came out different after the PNGs (renderer r1).
    svg = (FIXTURES / "honest" / "shadow_card.svg").read_bytes()
    full = render_all(svg)
    assert {output: render(svg, output) for output in outputs()} == dict(full)
    # A PDF states when it was made: a fixed date, so the bytes do not depend on the clock.
    assert b"/CreationDate (20000101000000Z)" in full[Output("pdf", 64)]
