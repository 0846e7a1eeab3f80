"""Rendering an icon's derivatives: staged pure functions, bytes in, bytes out (no I/O).

``render(svg, output, params)`` renders one output; ``render_missing`` renders the outputs a
caller lacks, one render *pass* at a time (`passes`: a PNG size with the WebP or preview made
from that PNG, or the PDF), each from a fresh parse: cairosvg changes mask and pattern nodes
while it draws them, so a tree drawn twice does not draw the same (``r1`` drew the PDF from the
tree the PNGs had been drawn from, and an icon with a mask got a different PDF; ``r2`` also
gives PDFs a fixed creation date, where cairo wrote the current second). Keys are
deterministic (``derivatives/{content_hash}/{renderer_version}/{kind}-{size}.{ext}``), so an
output that is already stored is never rendered again. ``RENDERER_VERSION`` names the renderer
and its parameters: bump it whenever output bytes would change, and a re-render writes new keys.

cairosvg runs with ``unsafe=False`` (no entities, no external files) and a URL fetcher that
refuses every fetch (it only decodes embedded ``data:image/…;base64`` rasters, in process): the
sanitiser already removed external references, this is defence in depth.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

RENDERER_VERSION = "r2"
DERIVATIVES_PREFIX = "derivatives"


class FetchRefused(PermissionError):
    """The SVG referenced an external resource; the renderer never fetches anything."""


class RenderError(ValueError):
    """The SVG could not be rendered (malformed, zero-sized, or it tried to fetch something)."""


@dataclass(frozen=True, slots=True)
class RenderParams:
    """Everything that decides the output bytes (recorded as lineage with each derivative set).

    WebP: ``webp_method`` is passed explicitly. Method 6 with the default alpha quality takes
    ~1.2 s per 256 px transparent icon against ~10 ms for method 4, for ~1.7 % fewer bytes
    (docs/media.md has the measurements).
    """

    base_size: int = 64
    scales: tuple[int, ...] = (1, 2, 3, 4)
    webp_size: int = 256
    webp_quality: int = 90
    webp_method: int = 4
    pdf_size: int = 64
    preview_size: int = 128
    watermark: str = "iconmarket"

    def lineage(self) -> dict[str, Any]:
        """The parameters as JSON-friendly data, for the DerivativesRecorded event."""
        return {
            "base_size": self.base_size,
            "scales": list(self.scales),
            "webp_size": self.webp_size,
            "webp_quality": self.webp_quality,
            "webp_method": self.webp_method,
            "pdf_size": self.pdf_size,
            "preview_size": self.preview_size,
            "watermark": self.watermark,
        }


DEFAULT_PARAMS = RenderParams()


@dataclass(frozen=True, slots=True)
class Output:
    """One rendered file: ``kind`` png, webp, pdf or preview (the public watermarked PNG)."""

    kind: str
    size: int

    @property
    def ext(self) -> str:
        return "png" if self.kind == "preview" else self.kind

    @property
    def content_type(self) -> str:
        return {"png": "image/png", "webp": "image/webp", "pdf": "application/pdf"}[self.ext]

    @property
    def public(self) -> bool:
        return self.kind == "preview"

    def key(self, content_hash: str, renderer_version: str = RENDERER_VERSION) -> str:
        return derivative_key(content_hash, renderer_version, self.kind, self.size, self.ext)


def derivative_key(content_hash: str, renderer_version: str, kind: str, size: int, ext: str) -> str:
    return f"{DERIVATIVES_PREFIX}/{content_hash}/{renderer_version}/{kind}-{size}.{ext}"


def outputs(params: RenderParams = DEFAULT_PARAMS) -> tuple[Output, ...]:
    """The full derivative set: PNG at each scale of the base size, WebP, PDF, the preview."""
    pngs = tuple(Output("png", params.base_size * scale) for scale in params.scales)
    return (
        *pngs,
        Output("webp", params.webp_size),
        Output("pdf", params.pdf_size),
        Output("preview", params.preview_size),
    )


def content_hash(svg: bytes) -> str:
    """The hash originals are stored under (hex sha256 of the sanitised bytes)."""
    return hashlib.sha256(svg).hexdigest()


DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,([A-Za-z0-9+/=\s]*)$")


def _fetch_nothing(url: str, resource_type: str) -> bytes:
    """cairosvg's URL fetcher: never opens anything. An embedded ``data:image/…;base64`` raster
    (the SVG policy allows those) is decoded here, in process; every other URL is refused."""
    embedded = DATA_IMAGE.match(url or "")
    if embedded is None:
        _refuse(url)
    return base64.b64decode(embedded.group(2), validate=False)


def _refuse(url: str) -> NoReturn:
    raise FetchRefused(f"the renderer fetches nothing; the SVG references {url[:80]!r}")


def parse(svg: bytes) -> Any:
    """The parsed cairosvg tree (entities and external files refused)."""
    from cairosvg.parser import Tree

    try:
        return Tree(bytestring=svg, unsafe=False, url_fetcher=_fetch_nothing)
    except FetchRefused as exc:
        raise RenderError(str(exc)) from exc
    except Exception as exc:  # cairosvg and the XML parser raise many kinds
        raise RenderError(f"unreadable SVG: {exc}") from exc


# A PDF states when it was made; a fixed date keeps the same drawing's PDF the same bytes.
PDF_CREATION_DATE = "2000-01-01T00:00:00Z"


def _surface(tree: Any, surface_class: Any, size: int) -> bytes:
    out = io.BytesIO()
    try:
        surface = surface_class(tree, out, 96, output_width=size, output_height=size)
        if surface_class.__name__ == "PDFSurface":
            from cairosvg.surface import cairo  # cairocffi, as cairosvg imports it

            surface.cairo.set_metadata(cairo.PDF_METADATA_CREATE_DATE, PDF_CREATION_DATE)
        surface.finish()
    except FetchRefused as exc:
        raise RenderError(str(exc)) from exc
    except Exception as exc:  # drawing errors of any kind mean "cannot render"
        raise RenderError(f"cannot render: {exc}") from exc
    return out.getvalue()


def png_from_tree(tree: Any, size: int) -> bytes:
    from cairosvg.surface import PNGSurface

    return _surface(tree, PNGSurface, size)


def pdf_from_tree(tree: Any, size: int) -> bytes:
    from cairosvg.surface import PDFSurface

    return _surface(tree, PDFSurface, size)


def webp_from_png(png: bytes, params: RenderParams) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        out = io.BytesIO()
        image.save(out, "WEBP", quality=params.webp_quality, method=params.webp_method)
    return out.getvalue()


@functools.lru_cache(maxsize=8)
def _watermark(size: int, text: str) -> Any:
    """The translucent diagonal text band for a ``size`` px tile (drawn once, then reused)."""
    from PIL import Image, ImageDraw, ImageFont

    mark = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
    draw = ImageDraw.Draw(mark)
    font = ImageFont.load_default(size=max(10, size // 8))
    step = max(12, size // 4)
    for row, y in enumerate(range(0, size * 2, step)):
        draw.text(((row % 2) * step, y), f"{text} " * 4, font=font, fill=(0, 0, 0, 70))
    mark = mark.rotate(30, resample=Image.Resampling.BILINEAR)
    left = (mark.size[0] - size) // 2
    return mark.crop((left, left, left + size, left + size))


def watermark_png(png: bytes, params: RenderParams) -> bytes:
    """The icon on white under a diagonal band of translucent text, as an opaque PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as opened:
        icon = opened.convert("RGBA")
    background = Image.new("RGBA", icon.size, (255, 255, 255, 255))
    mark = _watermark(icon.size[0], params.watermark)
    composed = Image.alpha_composite(Image.alpha_composite(background, icon), mark)
    out = io.BytesIO()
    composed.convert("RGB").save(out, "PNG")
    return out.getvalue()


def passes(wanted: Iterable[Output]) -> list[tuple[Output, ...]]:
    """``wanted`` grouped into render passes: each PNG size with the WebP/preview of that
    size (made from its PNG), and the PDF alone."""
    groups: dict[tuple[str, int], list[Output]] = {}
    for output in wanted:
        key = ("pdf", output.size) if output.kind == "pdf" else ("raster", output.size)
        groups.setdefault(key, []).append(output)
    return [tuple(group) for group in groups.values()]


def render_missing(
    svg: bytes, wanted: Iterable[Output], params: RenderParams = DEFAULT_PARAMS
) -> dict[Output, bytes]:
    """Render ``wanted``, one pass at a time, each from its own parse of ``svg``."""
    wanted = tuple(wanted)
    rendered: dict[Output, bytes] = {}
    for group in passes(wanted):
        rendered.update(_render_pass(svg, group, params))
    return {output: rendered[output] for output in wanted}


def _render_pass(
    svg: bytes, wanted: tuple[Output, ...], params: RenderParams
) -> dict[Output, bytes]:
    """One pass: one parse, at most one PNG size (and what is made from it) or the PDF."""
    tree = parse(svg)
    pngs: dict[int, bytes] = {}

    def png(size: int) -> bytes:
        if size not in pngs:
            pngs[size] = png_from_tree(tree, size)
        return pngs[size]

    rendered: dict[Output, bytes] = {}
    for output in wanted:
        if output.kind == "png":
            rendered[output] = png(output.size)
        elif output.kind == "webp":
            rendered[output] = webp_from_png(png(output.size), params)
        elif output.kind == "pdf":
            rendered[output] = pdf_from_tree(tree, output.size)
        elif output.kind == "preview":
            rendered[output] = watermark_png(png(output.size), params)
        else:
            raise ValueError(f"unknown output kind {output.kind!r}")
    return rendered


def render(svg: bytes, output: Output, params: RenderParams = DEFAULT_PARAMS) -> bytes:
    """One output's bytes."""
    return render_missing(svg, [output], params)[output]


def render_all(svg: bytes, params: RenderParams = DEFAULT_PARAMS) -> Mapping[Output, bytes]:
    """The full derivative set of ``svg``."""
    return render_missing(svg, outputs(params), params)
