"""Derivative lineage (and its v1 upcast), idempotent recording, downloadable files, previews of
sets and families, free downloads."""

from __future__ import annotations

import uuid
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from domain.errors import DomainError
from domain.family import Family
from domain.icon import Icon, IconFile
from domain.icon_set import IconSet, IconStyle
from domain.library import Library
from domain.media import Derivative, MediaFormat, SvgOriginal
from domain.money import Money
from domain.traced_aggregate import Trace

ORIGINAL = SvgOriginal("originals/h1.svg", "h1", 300, 24, 24)
ITEMS = [
    Derivative(MediaFormat.PNG, 64, "d/h1/r1/png-64.png", 900),
    Derivative(MediaFormat.PNG, 256, "d/h1/r1/png-256.png", 4000),
    Derivative(MediaFormat.WEBP, 256, "d/h1/r1/webp-256.webp", 2000),
    Derivative(MediaFormat.PDF, 64, "d/h1/r1/pdf-64.pdf", 1500),
]
PARAMS: dict[str, int | str] = {"webp_method": 4, "scales": "1,2,3,4"}


def _icon(trace: Trace, price: int = 0) -> Icon:
    icon = Icon.create(
        set_id=uuid.uuid4(),
        family_id=uuid.uuid4(),
        owner_id="carol",
        name="arrow",
        price=Money(price, "USD"),
        **trace,
    )
    icon.record_original(original=ORIGINAL, **trace)
    return icon


def _record(icon: Icon, trace: Trace, version: str = "r1") -> None:
    icon.record_derivatives(
        source_hash="h1",
        renderer_version=version,
        items=ITEMS,
        parameters=PARAMS,
        preview_key="d/h1/r1/preview-128.png",
        **trace,
    )


def test_lineage_is_recorded_and_the_same_recording_again_appends_nothing(trace: Trace) -> None:
    icon = _icon(trace)
    _record(icon, trace)
    (recorded,) = [e for e in icon.collect_events() if isinstance(e, Icon.DerivativesRecorded)]
    assert (recorded.parameters, recorded.preview_key) == (PARAMS, "d/h1/r1/preview-128.png")
    assert (icon.render_parameters, icon.preview_key) == (PARAMS, "d/h1/r1/preview-128.png")
    _record(icon, trace)
    assert icon.collect_events() == []
    _record(icon, trace, version="r2")
    assert [type(e).__qualname__ for e in icon.collect_events()] == ["Icon.DerivativesRecorded"]


def test_a_stored_v1_derivatives_event_is_upcast_without_lineage(trace: Trace) -> None:
    app: Application[UUID] = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    icon = _icon(trace)
    _record(icon, trace)
    app.save(icon)
    stored = app.recorder.select_events(icon.id)[-1]
    state = app.mapper.transcoder.decode(stored.state)
    del state["parameters"], state["preview_key"], state["class_version"]
    v1 = StoredEvent(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=app.mapper.transcoder.encode(state),
    )
    event = app.mapper.to_domain_event(v1)
    assert isinstance(event, Icon.DerivativesRecorded)
    assert (event.parameters, event.preview_key, event.renderer_version) == ({}, None, "r1")


def test_file_for_picks_the_original_or_a_derivative(trace: Trace) -> None:
    icon = _icon(trace)
    _record(icon, trace)
    assert icon.file_for("svg") == IconFile(MediaFormat.SVG, None, "originals/h1.svg", 300)
    assert icon.file_for("png") == IconFile(MediaFormat.PNG, 256, "d/h1/r1/png-256.png", 4000)
    assert icon.file_for("png", 64).key == "d/h1/r1/png-64.png"
    assert icon.file_for("pdf", 999) == IconFile(MediaFormat.PDF, None, "d/h1/r1/pdf-64.pdf", 1500)
    with pytest.raises(DomainError) as missing:
        icon.file_for("png", 128)
    assert missing.value.code == "format_unavailable"
    with pytest.raises(DomainError) as unknown:
        icon.file_for("gif")
    assert unknown.value.code == "invalid_choice"


def test_a_revised_original_has_no_derivative_files_until_rendered(trace: Trace) -> None:
    icon = _icon(trace)
    _record(icon, trace)
    icon.revise_svg(original=SvgOriginal("originals/h2.svg", "h2", 310, 24, 24), **trace)
    with pytest.raises(DomainError) as missing:
        icon.file_for("png")
    assert missing.value.code == "format_unavailable"
    assert icon.file_for("svg").key == "originals/h2.svg"
    assert icon.preview_key is None


@pytest.mark.parametrize("kind", ["set", "family"])
def test_previews_record_once_per_member_hash(trace: Trace, kind: str) -> None:
    owner: IconSet | Family
    if kind == "set":
        owner = IconSet.create(
            family_id=uuid.uuid4(), owner_id="carol", name="Line", style=IconStyle.LINE, **trace
        )
    else:
        owner = Family.create(owner_id="carol", name="Arrows", **trace)
    owner.collect_events()
    members = [uuid.uuid4(), uuid.uuid4()]
    owner.record_preview(key="previews/p1.png", member_hash="m1", icon_ids=members, **trace)
    owner.record_preview(key="previews/p1.png", member_hash="m1", icon_ids=members, **trace)
    assert len(owner.collect_events()) == 1
    assert (owner.preview_key, owner.preview_members) == ("previews/p1.png", tuple(members))
    with pytest.raises(DomainError) as empty:
        owner.record_preview(key="previews/p2.png", member_hash="m2", icon_ids=[], **trace)
    assert empty.value.code == "invalid_preview"


def test_a_free_download_needs_no_entitlement_but_a_paid_one_does(trace: Trace) -> None:
    library = Library.open(customer_id="dan", **trace)
    icon_id = uuid.uuid4()
    download = {"icon_id": icon_id, "format": MediaFormat.PNG, "size": 64, "size_bytes": 900}
    with pytest.raises(DomainError) as refused:
        library.record_download(**download, **trace)  # type: ignore[arg-type]
    assert refused.value.code == "not_entitled"
    library.record_download(**download, free=True, **trace)  # type: ignore[arg-type]
    assert library.download_count == 1
