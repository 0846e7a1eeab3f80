"""The SVG policy: pure functions from uploaded bytes to a sanitised, normalised SVG (or a refusal).

Hostile constructs are refused (422 with the rule's code, see docs/media.md): a DOCTYPE or any
entity, ``<script>``/``<handler>``, ``on*`` attributes, ``javascript:``, ``<foreignObject>``, any
reference that leaves the document (``href``/``xlink:href``/CSS ``url()``/``@import``/
``<?xml-stylesheet?>``; only ``#id`` is allowed, plus raster ``data:`` images in ``<image>``), and
anything past the limits. Harmless clutter is stripped: comments, other processing
instructions, editor namespaces (Inkscape, Sodipodi, RDF metadata), animation elements,
elements outside the allow-list, and whitespace between elements. What is stored is the
deterministic serialisation of the result, so one drawing always gets one content hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from pipelines.errors import RefusalCode, SvgRefused
from pipelines.svg_cost import Canvas, estimate_render_cost
from pipelines.svg_css import (
    check_declarations,
    check_stylesheet,
    is_local_reference,
    needs_css_check,
)
from pipelines.svg_dimensions import declared_dimensions
from pipelines.svg_images import is_allowed_raster
from pipelines.svg_parse import parse_svg_xml
from pipelines.svg_references import expand_references
from pipelines.svg_serialise import SVG_NS, XLINK_NS, SvgNode, serialise

XML_NS = "http://www.w3.org/XML/1998/namespace"
SVG_MEDIA_TYPE = "image/svg+xml"
DEFAULT_RENDER_BUDGET = 2_000_000
"""Cost units (≈ µs of the reference renderer for the whole derivative set): about 2 s."""


@dataclass(frozen=True)
class SvgLimits:
    """Bounds on an uploaded SVG (settings ``svg_max_*``)."""

    max_bytes: int = 512 * 1024
    max_elements: int = 10_000
    max_depth: int = 48
    max_dimension: int = 4096
    max_render_cost: int = DEFAULT_RENDER_BUDGET


@dataclass(frozen=True)
class SanitisedSvg:
    """The SVG to store: its bytes, their sha256 (hex), the recorded pixel dimensions and the
    estimated render cost (`pipelines.svg_cost`, cost units)."""

    data: bytes
    content_hash: str
    width: int
    height: int
    render_cost: int

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def key(self) -> str:
        return original_key(self.content_hash)


def original_key(content_hash: str) -> str:
    """The content-addressed key of an original in the private bucket."""
    return f"originals/{content_hash}.svg"


_REFUSED_ELEMENTS = {
    "script": RefusalCode.SVG_SCRIPT,
    "handler": RefusalCode.SVG_SCRIPT,
    "foreignobject": RefusalCode.SVG_FOREIGN_OBJECT,
}
_FILTER_PRIMITIVES = frozenset(
    [
        "feBlend",
        "feColorMatrix",
        "feComponentTransfer",
        "feComposite",
        "feConvolveMatrix",
        "feDiffuseLighting",
        "feDisplacementMap",
        "feDistantLight",
        "feDropShadow",
        "feFlood",
        "feFuncA",
        "feFuncB",
        "feFuncG",
        "feFuncR",
        "feGaussianBlur",
        "feImage",
        "feMerge",
        "feMergeNode",
        "feMorphology",
        "feOffset",
        "fePointLight",
        "feSpecularLighting",
        "feSpotLight",
        "feTile",
        "feTurbulence",
    ]
)
ALLOWED_ELEMENTS = _FILTER_PRIMITIVES | frozenset(
    [
        "svg",
        "g",
        "defs",
        "symbol",
        "use",
        "switch",
        "a",
        "title",
        "desc",
        "view",
        "style",
        "path",
        "rect",
        "circle",
        "ellipse",
        "line",
        "polyline",
        "polygon",
        "text",
        "tspan",
        "textPath",
        "image",
        "linearGradient",
        "radialGradient",
        "stop",
        "pattern",
        "clipPath",
        "mask",
        "marker",
        "filter",
    ]
)
_TEXT_CONTENT = frozenset({"text", "tspan", "textPath", "title", "desc", "style", "a"})
_KEPT_XML_ATTRIBUTES = frozenset({"space", "lang"})
_CONTROL = re.compile(r"[\x00-\x20]+")


def sanitise_svg(raw: bytes, limits: SvgLimits | None = None) -> SanitisedSvg:
    """The stored form of ``raw``; raises `SvgRefused` naming the first rule it breaks."""
    limits = limits or SvgLimits()
    if len(raw) > limits.max_bytes:
        raise SvgRefused(
            RefusalCode.SVG_TOO_LARGE, f"{len(raw)} bytes exceeds the limit of {limits.max_bytes}"
        )
    if not raw.strip():
        raise SvgRefused(RefusalCode.SVG_NOT_SVG, "the upload is empty")
    parsed = parse_svg_xml(raw, max_elements=limits.max_elements, max_depth=limits.max_depth)
    root = parsed.root
    namespace, local = split_name(root.tag)
    if local != "svg" or namespace not in (SVG_NS, None):
        raise SvgRefused(RefusalCode.SVG_NOT_SVG, f"the root element is {local!r}, not an svg")
    _check_processing_instructions(parsed.processing_instructions)
    _check_hostile(root, limits.max_dimension)
    dimensions = declared_dimensions(
        root.get("width"),
        root.get("height"),
        root.get("viewBox"),
        max_dimension=limits.max_dimension,
    )
    clean = _keep(root, document_namespace=namespace)
    assert clean is not None  # the root is an allowed svg element
    clean.attributes.update(
        {
            "viewBox": dimensions.view_box_text,
            "width": str(dimensions.width),
            "height": str(dimensions.height),
        }
    )
    expansion = expand_references(clean, limits.max_elements)
    canvas = Canvas(dimensions.view_box[2], dimensions.view_box[3])
    cost = estimate_render_cost(expansion, canvas, cap=limits.max_render_cost)
    if cost.total > limits.max_render_cost:
        raise SvgRefused(
            RefusalCode.SVG_TOO_COSTLY,
            f"the estimated render cost exceeds the budget of {limits.max_render_cost:,} units "
            f"({cost.describe()}; docs/media.md, the render cost model)",
        )
    data = serialise(clean)
    return SanitisedSvg(
        data=data,
        content_hash=hashlib.sha256(data).hexdigest(),
        width=dimensions.width,
        height=dimensions.height,
        render_cost=cost.total,
    )


def split_name(name: str) -> tuple[str | None, str]:
    """``{namespace}local`` → (namespace, local); a name without a namespace → (None, name)."""
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return None, name


def _check_processing_instructions(instructions: list[tuple[str, str]]) -> None:
    for target, _data in instructions:
        if target.lower() == "xml-stylesheet":
            raise SvgRefused(
                RefusalCode.SVG_EXTERNAL_REFERENCE, "<?xml-stylesheet?> references are not allowed"
            )


def _check_hostile(root: Element, max_dimension: int) -> None:
    """Refusals apply to every element, even ones that stripping would drop."""
    for element in root.iter():
        _namespace, local = split_name(element.tag)
        code = _REFUSED_ELEMENTS.get(local.lower())
        if code is not None:
            raise SvgRefused(code, f"<{local}> is not allowed")
        for name, value in element.attrib.items():
            _check_attribute(local, name, value, max_dimension)
        if local == "style":
            _check_style_element(element)


def _check_style_element(element: Element) -> None:
    """A ``<style>`` holds CSS text only: markup inside it could split what is checked from
    what is kept (stripping drops elements but keeps text around them), hiding an ``@import``."""
    if len(element):
        _namespace, child = split_name(element[0].tag)
        raise SvgRefused(
            RefusalCode.SVG_EXTERNAL_REFERENCE,
            f"<style> may hold CSS text only, not elements (found <{child}>)",
        )
    check_stylesheet(element.text or "")


def _check_attribute(element: str, name: str, value: str, max_dimension: int) -> None:
    namespace, local = split_name(name)
    if local.lower().startswith("on"):
        raise SvgRefused(
            RefusalCode.SVG_EVENT_HANDLER, f"event handler attribute {local!r} is not allowed"
        )
    squashed = _CONTROL.sub("", value).lower()
    if "javascript:" in squashed or "vbscript:" in squashed:
        raise SvgRefused(RefusalCode.SVG_SCRIPT, f"{local!r} holds a script URL")
    if (local == "href" and namespace in (None, XLINK_NS)) or (local == "src" and not namespace):
        _check_href(element, value, max_dimension)
    elif local == "base" and namespace == XML_NS and value.strip():
        raise SvgRefused(RefusalCode.SVG_EXTERNAL_REFERENCE, "xml:base is not allowed")
    elif local == "style" or needs_css_check(value):
        check_declarations(value)


def _check_href(element: str, value: str, max_dimension: int) -> None:
    if is_local_reference(value):
        return
    if element == "image" and is_allowed_raster(value, max_dimension=max_dimension):
        return
    shown = value if len(value) <= 80 else value[:77] + "..."
    raise SvgRefused(
        RefusalCode.SVG_EXTERNAL_REFERENCE,
        f"<{element}> references {shown!r}; only #id (and raster data: images) are allowed",
    )


def _keep(element: Element, *, document_namespace: str | None) -> SvgNode | None:
    """The kept form of ``element`` (None when it is stripped, with its subtree)."""
    namespace, local = split_name(element.tag)
    if namespace != document_namespace or local not in ALLOWED_ELEMENTS:
        return None
    node = SvgNode(local, _kept_attributes(element))
    if local in _TEXT_CONTENT:
        node.text = element.text or ""
    for child in element:
        kept = _keep(child, document_namespace=document_namespace)
        if kept is None:
            continue
        if local in _TEXT_CONTENT:
            kept.tail = child.tail or ""
        node.children.append(kept)
    if local not in _TEXT_CONTENT:
        node.text = ""
    return node


def _kept_attributes(element: Element) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in element.attrib.items():
        namespace, local = split_name(name)
        if namespace is None:
            kept[local] = value
        elif namespace == XLINK_NS and local == "href":
            kept["xlink:href"] = value
        elif namespace == XML_NS and local in _KEPT_XML_ATTRIBUTES:
            kept[f"xml:{local}"] = value
    return kept
