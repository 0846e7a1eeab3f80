"""Cleaning of catalogue text: names, tags and categories."""

from collections.abc import Iterable

from domain.errors import ErrorCode, InvalidValue

MAX_NAME_LENGTH = 200
MAX_LABEL_LENGTH = 64


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidValue(
            ErrorCode.INVALID_NAME, f"a name needs 1 to {MAX_NAME_LENGTH} characters: {name!r}"
        )
    return cleaned


def clean_labels(labels: Iterable[str]) -> list[str]:
    """Lower-cased, trimmed, de-duplicated tags or categories, first occurrence first."""
    cleaned: list[str] = []
    for label in labels:
        value = " ".join(label.split()).lower()
        if not value or len(value) > MAX_LABEL_LENGTH:
            raise InvalidValue(
                ErrorCode.INVALID_LABEL,
                f"a tag or category needs 1 to {MAX_LABEL_LENGTH} characters: {label!r}",
            )
        if value not in cleaned:
            cleaned.append(value)
    return cleaned
