from collections.abc import Callable

import pytest

from domain.errors import DomainError, IllegalTransition, InvalidValue
from domain.family import Family
from domain.publication import PublicationStatus
from domain.traced_aggregate import Trace, TracedAggregate

Collect = Callable[[TracedAggregate], list[str]]
Rejects = Callable[..., DomainError]


def _family(trace: Trace) -> Family:
    return Family.create(
        owner_id="contributor-1",
        name="  Weather ",
        description=" Skies and storms ",
        categories=["Nature"],
        tags=["Sun", "sun", "Rain"],
        **trace,
    )


def test_creating_a_family_records_created_as_a_draft(trace: Trace, collect: Collect) -> None:
    family = _family(trace)

    assert collect(family) == ["Family.Created"]
    assert family.version == 1
    assert family.owner_id == "contributor-1"
    assert (family.name, family.description) == ("Weather", "Skies and storms")
    assert (family.categories, family.tags) == (("nature",), ("sun", "rain"))
    assert family.status is PublicationStatus.DRAFT


def test_creating_a_family_needs_a_name(trace: Trace) -> None:
    with pytest.raises(InvalidValue) as raised:
        Family.create(owner_id="contributor-1", name="  ", **trace)

    assert raised.value.code == "invalid_name"


@pytest.mark.parametrize(
    ("bad_trace", "code"),
    [
        ({"actor": " ", "correlation_id": "corr-1"}, "actor_required"),
        ({"actor": "account-1", "correlation_id": ""}, "correlation_id_required"),
    ],
)
def test_every_event_needs_an_actor_and_a_correlation_id(
    trace: Trace, rejects: Rejects, bad_trace: Trace, code: str
) -> None:
    family = _family(trace)
    with pytest.raises(InvalidValue) as raised:
        Family.create(owner_id="contributor-1", name="Weather", **bad_trace)
    assert raised.value.code == code

    rejects(family, InvalidValue, code, lambda: family.publish(**bad_trace))
    assert family.status is PublicationStatus.DRAFT


def test_updating_details_replaces_them(trace: Trace, collect: Collect) -> None:
    family = _family(trace)
    collect(family)

    family.update_details(
        name="Climate", description="", categories=["Science"], tags=["Storm"], **trace
    )

    assert collect(family) == ["Family.DetailsUpdated"]
    assert family.version == 2
    assert (family.name, family.description, family.categories, family.tags) == (
        "Climate",
        "",
        ("science",),
        ("storm",),
    )


def test_publish_unpublish_and_republish(trace: Trace, collect: Collect) -> None:
    family = _family(trace)
    collect(family)

    statuses = []
    for command in (family.publish, family.unpublish, family.publish):
        command(**trace)
        statuses.append(family.status)

    assert collect(family) == ["Family.Published", "Family.Unpublished", "Family.Published"]
    assert statuses == [
        PublicationStatus.PUBLISHED,
        PublicationStatus.UNPUBLISHED,
        PublicationStatus.PUBLISHED,
    ]
    assert family.version == 4


def test_a_published_family_cannot_be_published_again(trace: Trace, rejects: Rejects) -> None:
    family = _family(trace)
    family.publish(**trace)

    error = rejects(
        family, IllegalTransition, "illegal_transition", lambda: family.publish(**trace)
    )

    assert isinstance(error, IllegalTransition)
    assert (error.from_state, error.to_state) == ("published", "published")


def test_a_draft_family_cannot_be_unpublished(trace: Trace, rejects: Rejects) -> None:
    family = _family(trace)

    rejects(family, IllegalTransition, "illegal_transition", lambda: family.unpublish(**trace))
