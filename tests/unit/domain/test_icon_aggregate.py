from collections.abc import Callable
from uuid import UUID

import pytest

from domain.errors import DomainError, IllegalTransition, InvalidValue, InvariantViolated
from domain.icon import Icon
from domain.media import Derivative, MediaFormat, SvgOriginal
from domain.money import Money
from domain.products import Licence
from domain.publication import PublicationStatus
from domain.traced_aggregate import Trace, TracedAggregate

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]

SET_ID = UUID("00000000-0000-4000-8000-000000000005")
FAMILY_ID = UUID("00000000-0000-4000-8000-00000000000f")
PRICE = Money(300, "EUR")
ORIGINAL = SvgOriginal("originals/aa.svg", "aa", 2048, 24, 24)
REVISED = SvgOriginal("originals/bb.svg", "bb", 1024, 32, 32)
RENDERINGS = [
    Derivative(MediaFormat.PNG, 64, "derived/aa/r1/64.png", 900),
    Derivative(MediaFormat.WEBP, 64, "derived/aa/r1/64.webp", 500),
]


def _icon(trace: Trace, price: Money = PRICE) -> Icon:
    return Icon.create(
        set_id=SET_ID,
        family_id=FAMILY_ID,
        owner_id="contributor-1",
        name="Sun",
        tags=["Sun", "Weather"],
        categories=["Nature"],
        price=price,
        **trace,
    )


def _publishable_icon(trace: Trace) -> Icon:
    icon = _icon(trace)
    icon.record_original(original=ORIGINAL, **trace)
    icon.record_derivatives(source_hash="aa", renderer_version="r1", items=RENDERINGS, **trace)
    return icon


def _icon_in(status: PublicationStatus, trace: Trace) -> Icon:
    icon = _publishable_icon(trace)
    if status is PublicationStatus.PUBLISHED:
        icon.publish(**trace)
    elif status is PublicationStatus.UNPUBLISHED:
        icon.publish(**trace)
        icon.unpublish(**trace)
    elif status is PublicationStatus.RETIRED:
        icon.retire(**trace)
    return icon


def test_creating_an_icon_records_created_as_an_unsellable_draft(
    trace: Trace, collect: Collect
) -> None:
    icon = _icon(trace)

    assert collect(icon) == ["Icon.Created"]
    assert (icon.set_id, icon.family_id, icon.owner_id) == (SET_ID, FAMILY_ID, "contributor-1")
    assert (icon.name, icon.tags, icon.categories) == ("Sun", ("sun", "weather"), ("nature",))
    assert (icon.price, icon.is_free, icon.licence) == (Money(300, "EUR"), False, Licence.STANDARD)
    assert (icon.status, icon.version, icon.svg_revision) == (PublicationStatus.DRAFT, 1, 0)
    assert (icon.original, icon.derivatives, icon.renderer_version) == (None, (), None)
    assert (icon.is_publishable, icon.sellable) == (False, False)


def test_a_free_icon_costs_zero(trace: Trace) -> None:
    assert _icon(trace, Money.zero("EUR")).is_free


def test_update_details_price_and_licence(trace: Trace, collect: Collect) -> None:
    icon = _icon(trace)
    collect(icon)

    icon.update_details(name="Sunny", tags=["Bright"], categories=[], **trace)
    icon.change_price(price=Money(0, "EUR"), **trace)
    icon.change_licence(licence=Licence.EXTENDED, **trace)

    assert collect(icon) == ["Icon.DetailsUpdated", "Icon.PriceChanged", "Icon.LicenceChanged"]
    assert (icon.name, icon.tags, icon.categories) == ("Sunny", ("bright",), ())
    assert (icon.price, icon.licence, icon.version) == (Money(0, "EUR"), Licence.EXTENDED, 4)


def test_recording_the_original_is_svg_revision_one(trace: Trace, collect: Collect) -> None:
    icon = _icon(trace)
    collect(icon)

    icon.record_original(original=ORIGINAL, **trace)

    assert collect(icon) == ["Icon.OriginalRecorded"]
    assert (icon.original, icon.svg_revision, icon.version) == (ORIGINAL, 1, 2)
    assert icon.is_publishable is False


def test_the_original_can_be_recorded_only_once(trace: Trace, rejects: Rejects) -> None:
    icon = _icon(trace)
    icon.record_original(original=ORIGINAL, **trace)

    rejects(
        icon,
        InvariantViolated,
        "original_already_recorded",
        lambda: icon.record_original(original=REVISED, **trace),
    )


def test_derivatives_of_the_current_original_make_it_publishable(
    trace: Trace, collect: Collect
) -> None:
    icon = _icon(trace)
    icon.record_original(original=ORIGINAL, **trace)
    collect(icon)

    icon.record_derivatives(source_hash="aa", renderer_version="r1", items=RENDERINGS, **trace)

    assert collect(icon) == ["Icon.DerivativesRecorded"]
    assert (icon.derivatives, icon.renderer_version) == (tuple(RENDERINGS), "r1")
    assert (icon.has_current_derivatives, icon.is_publishable, icon.version) == (True, True, 3)


def test_re_rendering_replaces_the_derivatives(trace: Trace, collect: Collect) -> None:
    icon = _publishable_icon(trace)
    collect(icon)
    pdf = Derivative(MediaFormat.PDF, 24, "derived/aa/r2/24.pdf", 4000)

    icon.record_derivatives(source_hash="aa", renderer_version="r2", items=[pdf], **trace)

    assert collect(icon) == ["Icon.DerivativesRecorded"]
    assert (icon.derivatives, icon.renderer_version) == ((pdf,), "r2")


def test_derivatives_need_an_original(trace: Trace, rejects: Rejects) -> None:
    icon = _icon(trace)

    rejects(
        icon,
        InvariantViolated,
        "original_missing",
        lambda: icon.record_derivatives(
            source_hash="aa", renderer_version="r1", items=RENDERINGS, **trace
        ),
    )


def test_derivatives_of_another_hash_are_stale(trace: Trace, rejects: Rejects) -> None:
    icon = _icon(trace)
    icon.record_original(original=ORIGINAL, **trace)

    rejects(
        icon,
        InvariantViolated,
        "stale_derivatives",
        lambda: icon.record_derivatives(
            source_hash="bb", renderer_version="r1", items=RENDERINGS, **trace
        ),
    )


def test_derivatives_cannot_be_empty(trace: Trace, rejects: Rejects) -> None:
    icon = _icon(trace)
    icon.record_original(original=ORIGINAL, **trace)

    rejects(
        icon,
        InvariantViolated,
        "derivatives_empty",
        lambda: icon.record_derivatives(source_hash="aa", renderer_version="r1", items=[], **trace),
    )


def test_revising_the_svg_bumps_the_revision_and_invalidates_derivatives(
    trace: Trace, collect: Collect
) -> None:
    icon = _icon_in(PublicationStatus.PUBLISHED, trace)
    collect(icon)

    icon.revise_svg(original=REVISED, **trace)

    assert collect(icon) == ["Icon.SvgRevised"]
    assert (icon.original, icon.svg_revision, icon.version) == (REVISED, 2, 5)
    assert (icon.derivatives, icon.renderer_version, icon.has_current_derivatives) == (
        (),
        None,
        False,
    )
    assert (icon.status, icon.sellable) == (PublicationStatus.PUBLISHED, False)


def test_new_derivatives_for_the_revised_hash_make_it_sellable_again(
    trace: Trace, collect: Collect
) -> None:
    icon = _icon_in(PublicationStatus.PUBLISHED, trace)
    icon.revise_svg(original=REVISED, **trace)
    collect(icon)
    png = Derivative(MediaFormat.PNG, 64, "derived/bb/r1/64.png", 700)

    icon.record_derivatives(source_hash="bb", renderer_version="r1", items=[png], **trace)

    assert collect(icon) == ["Icon.DerivativesRecorded"]
    assert (icon.derivatives, icon.sellable, icon.svg_revision) == ((png,), True, 2)


def test_derivatives_of_the_previous_original_are_stale_after_a_revision(
    trace: Trace, rejects: Rejects
) -> None:
    icon = _publishable_icon(trace)
    icon.revise_svg(original=REVISED, **trace)

    rejects(
        icon,
        InvariantViolated,
        "stale_derivatives",
        lambda: icon.record_derivatives(
            source_hash="aa", renderer_version="r1", items=RENDERINGS, **trace
        ),
    )


def test_revising_needs_an_original(trace: Trace, rejects: Rejects) -> None:
    icon = _icon(trace)

    rejects(
        icon,
        InvariantViolated,
        "original_missing",
        lambda: icon.revise_svg(original=REVISED, **trace),
    )


def test_revising_to_the_same_content_is_rejected(trace: Trace, rejects: Rejects) -> None:
    icon = _publishable_icon(trace)
    same_content = SvgOriginal("originals/other-key.svg", "aa", 2048, 24, 24)

    rejects(
        icon,
        InvariantViolated,
        "svg_unchanged",
        lambda: icon.revise_svg(original=same_content, **trace),
    )


def test_publishing_makes_it_sellable(trace: Trace, collect: Collect) -> None:
    icon = _publishable_icon(trace)
    collect(icon)

    icon.publish(**trace)

    assert collect(icon) == ["Icon.Published"]
    assert (icon.status, icon.sellable, icon.version) == (PublicationStatus.PUBLISHED, True, 4)


def test_publishing_needs_an_original(trace: Trace, rejects: Rejects) -> None:
    icon = _icon(trace)

    rejects(icon, InvariantViolated, "icon_not_publishable", lambda: icon.publish(**trace))


def test_publishing_needs_derivatives_of_the_original(trace: Trace, rejects: Rejects) -> None:
    icon = _icon(trace)
    icon.record_original(original=ORIGINAL, **trace)

    rejects(icon, InvariantViolated, "icon_not_publishable", lambda: icon.publish(**trace))


def test_publishing_a_revised_icon_needs_derivatives_of_the_new_hash(
    trace: Trace, rejects: Rejects
) -> None:
    icon = _icon_in(PublicationStatus.UNPUBLISHED, trace)
    icon.revise_svg(original=REVISED, **trace)

    rejects(icon, InvariantViolated, "icon_not_publishable", lambda: icon.publish(**trace))


def test_a_retired_icon_remains_but_is_not_sellable(trace: Trace, collect: Collect) -> None:
    icon = _icon_in(PublicationStatus.PUBLISHED, trace)
    collect(icon)

    icon.retire(**trace)

    assert collect(icon) == ["Icon.Retired"]
    assert (icon.status, icon.sellable, icon.version) == (PublicationStatus.RETIRED, False, 5)
    assert (icon.original, icon.derivatives) == (ORIGINAL, tuple(RENDERINGS))


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            lambda icon, trace: icon.update_details(name="x", tags=[], categories=[], **trace),
            id="update_details",
        ),
        pytest.param(
            lambda icon, trace: icon.change_price(price=Money(1, "EUR"), **trace),
            id="change_price",
        ),
        pytest.param(
            lambda icon, trace: icon.change_licence(licence=Licence.EXTENDED, **trace),
            id="change_licence",
        ),
        pytest.param(
            lambda icon, trace: icon.revise_svg(original=REVISED, **trace), id="revise_svg"
        ),
    ],
)
def test_a_retired_icon_cannot_be_changed(
    trace: Trace,
    rejects: Rejects,
    command: Callable[[Icon, Trace], None],
) -> None:
    icon = _icon_in(PublicationStatus.RETIRED, trace)

    rejects(icon, InvariantViolated, "icon_retired", lambda: command(icon, trace))


def test_a_retired_icon_without_original_cannot_record_one(trace: Trace, rejects: Rejects) -> None:
    icon = _icon(trace)
    icon.retire(**trace)

    rejects(
        icon,
        InvariantViolated,
        "icon_retired",
        lambda: icon.record_original(original=ORIGINAL, **trace),
    )


def test_a_retired_icon_still_records_derivatives_for_its_buyers(
    trace: Trace, collect: Collect
) -> None:
    icon = _icon_in(PublicationStatus.RETIRED, trace)
    collect(icon)

    icon.record_derivatives(source_hash="aa", renderer_version="r2", items=RENDERINGS, **trace)

    assert collect(icon) == ["Icon.DerivativesRecorded"]
    assert (icon.renderer_version, icon.sellable) == ("r2", False)


def test_an_unknown_licence_is_rejected(trace: Trace) -> None:
    with pytest.raises(InvalidValue) as raised:
        Icon.create(
            set_id=SET_ID,
            family_id=FAMILY_ID,
            owner_id="contributor-1",
            name="Sun",
            price=Money(1, "EUR"),
            licence="forever",  # type: ignore[arg-type]
            **trace,
        )

    assert raised.value.code == "invalid_choice"


PUBLICATION_COMMANDS: dict[PublicationStatus, Callable[[Icon, Trace], None]] = {
    PublicationStatus.PUBLISHED: lambda icon, trace: icon.publish(**trace),
    PublicationStatus.UNPUBLISHED: lambda icon, trace: icon.unpublish(**trace),
    PublicationStatus.RETIRED: lambda icon, trace: icon.retire(**trace),
}
ALLOWED_PUBLICATION_MOVES = {
    (PublicationStatus.DRAFT, PublicationStatus.PUBLISHED),
    (PublicationStatus.DRAFT, PublicationStatus.RETIRED),
    (PublicationStatus.PUBLISHED, PublicationStatus.UNPUBLISHED),
    (PublicationStatus.PUBLISHED, PublicationStatus.RETIRED),
    (PublicationStatus.UNPUBLISHED, PublicationStatus.PUBLISHED),
    (PublicationStatus.UNPUBLISHED, PublicationStatus.RETIRED),
}
EVENT_FOR_STATUS = {
    PublicationStatus.PUBLISHED: "Icon.Published",
    PublicationStatus.UNPUBLISHED: "Icon.Unpublished",
    PublicationStatus.RETIRED: "Icon.Retired",
}


@pytest.mark.parametrize("target", list(PUBLICATION_COMMANDS))
@pytest.mark.parametrize("current", list(PublicationStatus))
def test_icon_publication_transition_table(
    trace: Trace,
    collect: Collect,
    rejects: Rejects,
    current: PublicationStatus,
    target: PublicationStatus,
) -> None:
    icon = _icon_in(current, trace)
    collect(icon)
    version = icon.version

    if (current, target) in ALLOWED_PUBLICATION_MOVES:
        PUBLICATION_COMMANDS[target](icon, trace)
        assert collect(icon) == [EVENT_FOR_STATUS[target]]
        assert (icon.status, icon.version) == (target, version + 1)
    else:
        error = rejects(
            icon,
            IllegalTransition,
            "illegal_transition",
            lambda: PUBLICATION_COMMANDS[target](icon, trace),
        )
        assert isinstance(error, IllegalTransition)
        assert (error.from_state, error.to_state) == (current.value, target.value)
        assert icon.status is current
