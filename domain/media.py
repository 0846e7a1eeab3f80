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
    """An SVG original as stored in events and aggregate state (``render_cost``: the
    ingestion's estimate in cost units, None for originals recorded before it existed)."""

    key: str
    content_hash: str
    size_bytes: int
    width: int
    height: int
    render_cost: int | None


class DerivativeData(TypedDict):
    """A derivative as stored in events and aggregate state."""

    kind: str
    size: int
    key: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class SvgOriginal:
    """The sanitised original in the object store: ``key``, its content hash and dimensions,
    and its estimated render cost (cost units; None when it was not estimated)."""

    key: str
    content_hash: str
    size_bytes: int
    width: int
    height: int
    render_cost: int | None = None

    def __post_init__(self) -> None:
        if not self.key or not self.content_hash:
            raise InvalidValue(ErrorCode.INVALID_SVG_ORIGINAL, "an original needs a key and hash")
        if not _all_positive(self.size_bytes, self.width, self.height):
            raise InvalidValue(
                ErrorCode.INVALID_SVG_ORIGINAL, "size and dimensions must be positive integers"
            )
        if self.render_cost is not None and not _all_positive(self.render_cost):
            raise InvalidValue(
                ErrorCode.INVALID_SVG_ORIGINAL, "a render cost must be a positive integer"
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
            "render_cost": self.render_cost,
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


class RenderRefusalCode(StrEnum):
    """Why the media workers refused to render an original (each is final for that original
    and renderer version: it is not rendered again)."""

    RENDER_TIMEOUT = "render_timeout"
    RENDER_FAILED = "render_failed"
    RENDER_CRASHED = "render_crashed"


class RenderRefusalData(TypedDict):
    """A render refusal as stored in events and aggregate state."""

    source_hash: str
    renderer_version: str
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class RenderRefusal:
    """The media workers' refusal to render the original ``source_hash``: its owner sees the
    ``code`` (`RenderRefusalCode`) and the ``detail``."""

    source_hash: str
    renderer_version: str
    code: RenderRefusalCode
    detail: str

    def __post_init__(self) -> None:
        if not self.source_hash or not self.renderer_version:
            raise InvalidValue(
                ErrorCode.INVALID_RENDER_REFUSAL, "a refusal names the source and the renderer"
            )
        if self.code not in RenderRefusalCode.__members__.values():
            raise InvalidValue(
                ErrorCode.INVALID_RENDER_REFUSAL, f"{self.code!r} is not a render refusal code"
            )
        object.__setattr__(self, "code", RenderRefusalCode(self.code))
        object.__setattr__(self, "detail", self.detail[:MAX_REFUSAL_DETAIL])

    @classmethod
    def from_data(cls, data: RenderRefusalData) -> "RenderRefusal":
        return cls(
            data["source_hash"],
            data["renderer_version"],
            RenderRefusalCode(data["code"]),
            data["detail"],
        )

    def to_data(self) -> RenderRefusalData:
        return {
            "source_hash": self.source_hash,
            "renderer_version": self.renderer_version,
            "code": self.code.value,
            "detail": self.detail,
        }


MAX_REFUSAL_DETAIL = 500


def _all_positive(*values: int) -> bool:
    return all(type(value) is int and value > 0 for value in values)
