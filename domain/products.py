"""What can be sold: an icon or a set, under a licence."""

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from domain.choices import parse_choice


class ProductKind(StrEnum):
    ICON = "icon"
    SET = "set"


class Licence(StrEnum):
    STANDARD = "standard"
    EXTENDED = "extended"


@dataclass(frozen=True, slots=True)
class ProductRef:
    kind: ProductKind
    id: UUID

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", parse_choice(ProductKind, self.kind))
