"""The render cost model: what rendering a sanitised SVG will cost, estimated before rendering.

The unit is one *cost unit*, calibrated to about one microsecond of CPU time for the whole
derivative set (four PNGs, the WebP, the PDF and the preview: five render passes) with the
reference renderer (cairosvg 2.9 on one core of the 2-core development machine; docs/media.md
has the measurements). The estimate is a sum over every element the document renders, with
references followed as the element bound follows them (`pipelines.svg_references.Expansion`):
a ``<use>``d subtree, a pattern, a mask or a filter costs once per element that references it,
so geometry is multiplied by the references that repeat it. Each rendered element costs:

- a fixed overhead (``element``; a ``<use>`` more, growing with the document, since cairosvg
  looks each reference up in the whole document);
- its geometry: ``path_number`` per number or command of its ``d``/``points`` plus
  ``path_number_squared`` per pair of them (a path crossing itself everywhere makes the
  tessellator's work quadratic);
- its text: ``text_char`` per character;
- its intermediate surfaces, per pixel: a mask's region, a pattern's tile and the area it
  paints (``mask_px``: drawn into a surface of their own each time they are used), a group
  drawn with ``opacity`` below 1, an embedded raster image (``surface_px``; also ``image_px``
  per pixel of the image);
- its filter: the filter region, once for the filter's result and once per primitive, times
  the primitive's factor (a blur: 1 + its standard deviation in pixels; a morphology: 1 + its
  diameter; a convolution: its kernel's size; turbulence: 4 per octave; lighting: 8).

Regions are in pixels of the largest raster output (256 px for the longest side of the
``viewBox``), or in user units where those are more (cairosvg sizes a mask's surface in user
units), so a large canvas makes every intermediate surface expensive. An ``objectBoundingBox``
region is taken relative to the whole canvas (the model does not compute bounding boxes or
follow transforms: it can miss a transform that enlarges a region; the render deadline bounds
what the model misses). Plus ``base`` per document: parsing, encoding and the watermark.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from pipelines.svg_images import raster_size
from pipelines.svg_references import Expansion
from pipelines.svg_serialise import SvgNode

LARGEST_OUTPUT_PX = 256


@dataclass(frozen=True)
class CostModel:
    """The model's coefficients, in cost units (≈ µs of the reference renderer)."""

    base: float = 20_000
    document_element: float = 50
    element: float = 450
    use: float = 1_100
    use_per_document_element: float = 0.3
    path_number: float = 30
    path_number_squared: float = 0.004
    text_char: float = 300
    surface_px: float = 0.004
    mask_px: float = 0.03
    image_px: float = 0.02


MODEL = CostModel()


@dataclass(frozen=True, slots=True)
class Cost:
    """A cost split by what it is spent on (cost units)."""

    elements: float = 0.0
    geometry: float = 0.0
    text: float = 0.0
    surfaces: float = 0.0
    filters: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(a + b for a, b in zip(self.parts(), other.parts(), strict=True)))

    def __mul__(self, factor: int) -> Cost:
        return Cost(*(a * factor for a in self.parts()))

    def parts(self) -> tuple[float, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    @property
    def total(self) -> float:
        return sum(self.parts())

    def capped(self, cap: float) -> Cost:
        return Cost(*(min(a, cap) for a in self.parts()))


@dataclass(frozen=True)
class RenderCost:
    """An estimate: the total in cost units (at most the cap it was computed with, plus one)
    and its split."""

    total: int
    split: Cost

    def describe(self) -> str:
        """The largest shares, for a refusal's detail: ``geometry 91 %, elements 8 %``."""
        shares = {f.name: getattr(self.split, f.name) for f in fields(self.split)}
        whole = sum(shares.values()) or 1.0
        ranked = sorted(shares.items(), key=lambda item: -item[1])
        return ", ".join(f"{name} {value / whole:.0%}" for name, value in ranked[:3] if value)


@dataclass(frozen=True)
class Canvas:
    """The ``viewBox`` size in user units, and the user-unit-to-pixel scale of the largest
    raster output."""

    width: float
    height: float

    @property
    def scale(self) -> float:
        return LARGEST_OUTPUT_PX / max(self.width, self.height)

    @property
    def area(self) -> float:
        return self.width * self.height

    def surface_px(self, user_area: float) -> float:
        """Pixels of a surface covering ``user_area`` user units: the output's pixels, or the
        user units when there are more of them."""
        return max(user_area, user_area * self.scale**2)

    def length_px(self, user_length: float) -> float:
        return user_length * max(1.0, self.scale)


_NUMBER_OR_COMMAND = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[A-Za-z]")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_OPACITY_STYLE = re.compile(r"(?:^|;)\s*opacity\s*:\s*([^;]+)", re.IGNORECASE)
_PATH_LIKE = frozenset({"path", "polyline", "polygon"})
# Drawn into a surface of their own, then composited through it, every time they are used.
_MASKING = frozenset({"mask", "pattern"})
_TEXT = frozenset({"text", "tspan", "textPath"})
_CONTAINERS = frozenset({"g", "svg", "symbol", "use", "a", "switch"})
_NO_SURFACE_PRIMITIVES = frozenset(
    {"feMergeNode", "feFuncA", "feFuncB", "feFuncG", "feFuncR"}
    | {"feDistantLight", "fePointLight", "feSpotLight"}
)
_DEFINITIONS = frozenset(
    {"symbol", "clipPath", "mask", "pattern", "marker", "filter"}
    | {"linearGradient", "radialGradient", "title", "desc", "style", "view"}
)
_SHARE_CAP_FACTOR = 1e6
_BLUR_CAP = float(LARGEST_OUTPUT_PX)
# The default region of a mask or filter: -10 % .. 110 % of each side.
_DEFAULT_REGION = 1.2


def estimate_render_cost(
    expansion: Expansion, canvas: Canvas, cap: int, model: CostModel = MODEL
) -> RenderCost:
    """The estimated cost of rendering the document of ``expansion``, in cost units (the
    total stops growing past ``cap`` + 1, so a bomb does not make the numbers huge)."""
    limit = float(cap + 1)
    # Each share is capped far above the limit, so a refusal can still say what dominates.
    share_cap = limit * _SHARE_CAP_FACTOR
    document_elements = len(expansion.root.iter())
    regions = _filter_regions(expansion.root, canvas)

    def own(node: SvgNode) -> Cost:
        return _own_cost(node, canvas, model, document_elements, regions)

    drawn = expansion.total(own, Cost(), lambda cost: cost.capped(share_cap), _drawn_in_place)
    split = drawn + Cost(elements=model.base + model.document_element * document_elements)
    return RenderCost(math.ceil(min(split.total, limit)), split)


def _drawn_in_place(parent: SvgNode, child: SvgNode) -> bool:
    """Whether ``child`` is drawn as part of ``parent`` (definitions are drawn only where they
    are referenced; metadata and style sheets never)."""
    return parent.tag != "defs" and child.tag not in _DEFINITIONS


def _own_cost(
    node: SvgNode,
    canvas: Canvas,
    model: CostModel,
    document_elements: int,
    regions: dict[int, float],
) -> Cost:
    if node.tag.startswith("#"):
        return Cost()
    elements = model.element
    if node.tag == "use":
        elements += model.use + model.use_per_document_element * document_elements
    geometry = 0.0
    if node.tag in _PATH_LIKE:
        numbers = len(_NUMBER_OR_COMMAND.findall(node.attributes.get("d", "")))
        numbers += len(_NUMBER_OR_COMMAND.findall(node.attributes.get("points", "")))
        geometry = model.path_number * numbers + model.path_number_squared * numbers**2
    text = 0.0
    if node.tag in _TEXT:
        characters = len(node.text.strip()) + sum(len(c.tail.strip()) for c in node.children)
        text = model.text_char * characters
    per_px = model.mask_px if node.tag in _MASKING else model.surface_px
    surfaces = per_px * _surface_px(node, canvas)
    if node.tag == "image":
        size = raster_size(node.attributes.get("href") or node.attributes.get("xlink:href", ""))
        if size is not None:
            surfaces += model.image_px * size[0] * size[1]
    filters = 0.0
    if node.tag == "filter":
        filters = model.surface_px * regions.get(id(node), 0.0)
    elif node.tag.startswith("fe"):
        region = regions.get(id(node), 0.0)
        filters = model.surface_px * region * _primitive_factor(node, canvas)
    return Cost(elements, geometry, text, surfaces, filters)


def _surface_px(node: SvgNode, canvas: Canvas) -> float:
    """The pixels of the intermediate surfaces one rendering of ``node`` needs."""
    whole = canvas.surface_px(canvas.area)
    if node.tag == "mask":
        return _region_px(node, "maskUnits", canvas)
    if node.tag == "pattern":
        if node.attributes.get("patternUnits") == "userSpaceOnUse":
            tile = _length(node.attributes.get("width"), canvas.width, default=0.0) * _length(
                node.attributes.get("height"), canvas.height, default=0.0
            )
        else:  # fractions of the bounding box, taken as the canvas
            tile = _length(node.attributes.get("width"), 1.0, default=0.0) * _length(
                node.attributes.get("height"), 1.0, default=0.0
            )
            tile *= canvas.area
        return canvas.surface_px(tile) + whole
    if node.tag == "image":
        return whole
    if node.tag in _CONTAINERS and _opacity(node) < 1.0:
        return whole
    return 0.0


def _region_px(node: SvgNode, units_attribute: str, canvas: Canvas) -> float:
    """The pixels of a mask's or filter's region (its ``width`` and ``height``)."""
    width, height = node.attributes.get("width"), node.attributes.get("height")
    if node.attributes.get(units_attribute) == "userSpaceOnUse":
        user_width = _length(width, canvas.width, default=_DEFAULT_REGION * canvas.width)
        user_height = _length(height, canvas.height, default=_DEFAULT_REGION * canvas.height)
        return canvas.surface_px(user_width * user_height)
    # objectBoundingBox: fractions of the element's box, which is taken as the canvas.
    fraction = _length(width, 1.0, default=_DEFAULT_REGION) * _length(
        height, 1.0, default=_DEFAULT_REGION
    )
    return canvas.surface_px(fraction * canvas.area)


def _filter_regions(root: SvgNode, canvas: Canvas) -> dict[int, float]:
    """Each ``<filter>``'s region in pixels, and the same for each of its primitives."""
    regions: dict[int, float] = {}
    for node in root.iter():
        if node.tag != "filter":
            continue
        region = _region_px(node, "filterUnits", canvas)
        regions[id(node)] = region
        for primitive in node.iter()[1:]:
            if primitive.tag.startswith("fe") and primitive.tag not in _NO_SURFACE_PRIMITIVES:
                regions[id(primitive)] = region
    return regions


def _primitive_factor(node: SvgNode, canvas: Canvas) -> float:
    """How many times a primitive goes over its region's pixels."""
    attributes = node.attributes
    if node.tag in ("feGaussianBlur", "feDropShadow"):
        deviation = max(_numbers(attributes.get("stdDeviation"), default=2.0))
        extra = 2.0 if node.tag == "feDropShadow" else 0.0
        return 1.0 + extra + min(canvas.length_px(abs(deviation)), _BLUR_CAP)
    if node.tag == "feMorphology":
        radius = max(_numbers(attributes.get("radius"), default=0.0))
        return 1.0 + min(2 * canvas.length_px(abs(radius)), 2 * _BLUR_CAP)
    if node.tag == "feConvolveMatrix":
        order = _numbers(attributes.get("order"), default=3.0)
        return max(1.0, abs(order[0])) * max(1.0, abs(order[-1]))
    if node.tag == "feTurbulence":
        return 4.0 * max(1.0, abs(_numbers(attributes.get("numOctaves"), default=1.0)[0]))
    if node.tag in ("feDiffuseLighting", "feSpecularLighting"):
        return 8.0
    return 1.0


def _numbers(value: str | None, *, default: float) -> list[float]:
    found = [float(n) for n in _NUMBER.findall(value or "")]
    finite = [n for n in found if math.isfinite(n)]
    return finite or [default]


def _length(value: str | None, reference: float, *, default: float) -> float:
    """A length in user units, a percentage being of ``reference``; ``default`` when absent
    or unreadable."""
    if value is None:
        return default
    text = value.strip()
    numbers = _NUMBER.findall(text)
    if not numbers:
        return default
    number = abs(float(numbers[0]))
    if not math.isfinite(number):
        return default
    return number / 100 * reference if text.endswith("%") else number


def _opacity(node: SvgNode) -> float:
    values = [node.attributes.get("opacity", "")]
    values += _OPACITY_STYLE.findall(node.attributes.get("style", ""))
    found = [_numbers(v, default=1.0)[0] for v in values if v.strip()]
    return min(found, default=1.0)
