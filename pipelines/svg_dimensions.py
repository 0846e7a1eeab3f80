"""Declared dimensions of an SVG: a viewBox is required (or derived from width and height)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pipelines.errors import RefusalCode, SvgRefused

# CSS absolute units in px; relative units (em, ex, %) give no absolute size.
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}
_LENGTH = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z%]*)\s*$")
_SEPARATOR = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Dimensions:
    """The normalised ``viewBox`` and the pixel ``width`` and ``height`` recorded for the icon."""

    view_box: tuple[float, float, float, float]
    width: int
    height: int

    @property
    def view_box_text(self) -> str:
        return " ".join(number_text(value) for value in self.view_box)


def number_text(value: float) -> str:
    """A number written the same way every time (integers without a fraction)."""
    if value.is_integer():
        return str(int(value))
    return f"{value:.10g}"


def declared_dimensions(
    width: str | None, height: str | None, view_box: str | None, *, max_dimension: int
) -> Dimensions:
    """The dimensions declared by the root's attributes; refuses missing, bad or huge ones."""
    w = _length("width", width)
    h = _length("height", height)
    box = _view_box(view_box) if view_box is not None else None
    if box is None:
        if w is None or h is None:
            raise SvgRefused(
                RefusalCode.SVG_DIMENSIONS,
                "a viewBox, or an absolute width and height to derive it from, is required",
            )
        box = (0.0, 0.0, w, h)
    box_w, box_h = box[2], box[3]
    if w is None:
        w = box_w if h is None else h * box_w / box_h
    if h is None:
        h = w * box_h / box_w
    for name, value in (
        ("width", w),
        ("height", h),
        ("viewBox width", box_w),
        ("viewBox height", box_h),
    ):
        if value > max_dimension:
            raise SvgRefused(
                RefusalCode.SVG_DIMENSIONS,
                f"{name} {number_text(value)} exceeds the limit of {max_dimension}",
            )
    return Dimensions(box, max(1, round(w)), max(1, round(h)))


def _length(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    match = _LENGTH.match(value)
    if match is None:
        raise SvgRefused(RefusalCode.SVG_DIMENSIONS, f"{name}={value[:40]!r} is not a length")
    unit = match.group(2).lower()
    if unit not in _UNITS:
        return None  # relative (%, em, ex): the viewBox decides
    number = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(number) or number <= 0:
        raise SvgRefused(RefusalCode.SVG_DIMENSIONS, f"{name} must be a positive length")
    return number


def _view_box(value: str) -> tuple[float, float, float, float]:
    parts = [part for part in _SEPARATOR.split(value.strip()) if part]
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise SvgRefused(RefusalCode.SVG_DIMENSIONS, f"viewBox={value[:60]!r} is not 4 numbers")
    if numbers[2] <= 0 or numbers[3] <= 0:
        raise SvgRefused(RefusalCode.SVG_DIMENSIONS, "the viewBox width and height must be > 0")
    return numbers[0], numbers[1], numbers[2], numbers[3]
