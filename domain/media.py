"""Records of an icon's media: the sanitised SVG original and its rendered derivatives."""

from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from domain.errors import ErrorCode, InvalidValue


class MediaFormat(StrEnum):
    SVG = "svg"
    PNG = "png"
    WEBP = "webp"
    PDF = "pdf"


DERIVATIVE_FORMATS = frozenset({MediaFormat.PNG, MediaFormat.WEBP, MediaFormat.PDF})


class SvgOriginalData(TypedDict):
    """An SVG original as stored in events and aggregate state."""

    key: str
    content_hash: str
    size_bytes: int
    width: int
    height: int


class DerivativeData(TypedDict):
    """A derivative as stored in events and aggregate state."""

    kind: str
    size: int
    key: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class SvgOriginal:
    """The sanitised original in the object store: ``key``, its content hash and dimensions."""

    key: str
    content_hash: str
    size_bytes: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if not self.key or not self.content_hash:
            raise InvalidValue(ErrorCode.INVALID_SVG_ORIGINAL, "an original needs a key and hash")
        if not _all_positive(self.size_bytes, self.width, self.height):
            raise InvalidValue(
                ErrorCode.INVALID_SVG_ORIGINAL, "size and dimensions must be positive integers"
            )

    @classmethod
    def from_data(cls, data: SvgOriginalData) -> "SvgOriginal":
        return cls(**data)

    def to_data(self) -> SvgOriginalData:
        return {
            "key": self.key,
            "content_hash": self.content_hash,
            "size_bytes": self.size_bytes,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, slots=True)
class Derivative:
    """One rendering of an original: ``kind`` (png, webp, pdf), edge ``size`` in pixels."""

    kind: MediaFormat
    size: int
    key: str
    size_bytes: int

    def __post_init__(self) -> None:
        if self.kind not in DERIVATIVE_FORMATS:
            raise InvalidValue(
                ErrorCode.INVALID_DERIVATIVE, f"{self.kind!r} is not a derivative format"
            )
        object.__setattr__(self, "kind", MediaFormat(self.kind))
        if not self.key or not _all_positive(self.size, self.size_bytes):
            raise InvalidValue(
                ErrorCode.INVALID_DERIVATIVE, "a derivative needs a key, a size and a byte count"
            )

    @classmethod
    def from_data(cls, data: DerivativeData) -> "Derivative":
        return cls(MediaFormat(data["kind"]), data["size"], data["key"], data["size_bytes"])

    def to_data(self) -> DerivativeData:
        return {
            "kind": self.kind.value,
            "size": self.size,
            "key": self.key,
            "size_bytes": self.size_bytes,
        }


def _all_positive(*values: int) -> bool:
    return all(type(value) is int and value > 0 for value in values)
