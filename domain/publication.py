"""The publication life cycle shared by families, sets and icons."""

from collections.abc import Mapping
from enum import StrEnum

from domain.errors import IllegalTransition


class PublicationStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    UNPUBLISHED = "unpublished"
    RETIRED = "retired"


PUBLICATION_TRANSITIONS: Mapping[PublicationStatus, frozenset[PublicationStatus]] = {
    PublicationStatus.DRAFT: frozenset({PublicationStatus.PUBLISHED, PublicationStatus.RETIRED}),
    PublicationStatus.PUBLISHED: frozenset(
        {PublicationStatus.UNPUBLISHED, PublicationStatus.RETIRED}
    ),
    PublicationStatus.UNPUBLISHED: frozenset(
        {PublicationStatus.PUBLISHED, PublicationStatus.RETIRED}
    ),
    PublicationStatus.RETIRED: frozenset(),
}


def check_publication_transition(
    aggregate: str, current: PublicationStatus, target: PublicationStatus
) -> None:
    if target not in PUBLICATION_TRANSITIONS[current]:
        raise IllegalTransition(aggregate, current.value, target.value)
