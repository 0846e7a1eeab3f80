"""Parsing of closed vocabularies (styles, licences, formats, roles) into their enums."""

from enum import StrEnum
from typing import TypeVar

from domain.errors import ErrorCode, InvalidValue

Choice = TypeVar("Choice", bound=StrEnum)


def parse_choice(choices: type[Choice], value: str) -> Choice:
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(choice.value for choice in choices)
        raise InvalidValue(
            ErrorCode.INVALID_CHOICE, f"{value!r} is not one of: {allowed}"
        ) from None
