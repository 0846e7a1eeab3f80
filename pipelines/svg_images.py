"""Raster images embedded in an SVG as ``data:`` URIs: the one kind of image the policy allows.

The URI must name PNG, JPEG, GIF or WebP, hold strict base64, and decode to an image of that
format (Pillow reads the header only, nothing is decoded) no larger than the dimension limit, so
a tiny "pixel bomb" cannot make the renderer allocate a huge surface.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image, UnidentifiedImageError

from pipelines.errors import RefusalCode, SvgRefused

_RASTER_DATA_URI = re.compile(
    r"^data:image/(png|jpeg|gif|webp);base64,([A-Za-z0-9+/=\s]+)$", re.IGNORECASE
)
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}


def is_allowed_raster(value: str, *, max_dimension: int) -> bool:
    """True for an acceptable raster ``data:`` URI; False for anything else (a reference).

    Raises `SvgRefused` (svg_dimensions) for a raster image larger than ``max_dimension``.
    """
    size = raster_size(value)
    if size is None:
        return False
    width, height = size
    if width > max_dimension or height > max_dimension:
        raise SvgRefused(
            RefusalCode.SVG_DIMENSIONS,
            f"an embedded image of {width}x{height} px exceeds the limit of {max_dimension}",
        )
    return True


def raster_size(value: str) -> tuple[int, int] | None:
    """The pixel size of the raster ``data:`` URI ``value`` (from its header), or None when it
    is not one; raises `SvgRefused` (svg_dimensions) for a decompression bomb."""
    match = _RASTER_DATA_URI.match(value.strip())
    if match is None:
        return None
    try:
        data = base64.b64decode("".join(match.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    expected = _PILLOW_FORMATS[match.group(1).lower()]
    try:
        with Image.open(io.BytesIO(data), formats=[expected]) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise SvgRefused(
            RefusalCode.SVG_DIMENSIONS, "an embedded image declares too many pixels"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return width, height
