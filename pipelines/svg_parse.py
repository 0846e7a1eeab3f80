"""Hardened XML parsing for the SVG policy: no DTD, no entities, no network, bounded size.

The parser is defusedxml's expat parser with DTDs forbidden outright (so no entity, internal or
external, is ever declared or expanded and nothing is fetched); the tree builder counts elements
and depth while parsing and stops as soon as a limit is passed, before the tree is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from pipelines.errors import RefusalCode, SvgRefused


@dataclass(frozen=True)
class ParsedSvg:
    """The parsed tree and the processing instructions (``<?target data?>``) around it."""

    root: Element
    processing_instructions: list[tuple[str, str]] = field(default_factory=list)


class _BoundedBuilder(TreeBuilder):
    def __init__(self, *, max_elements: int, max_depth: int) -> None:
        super().__init__()
        self.max_elements = max_elements
        self.max_depth = max_depth
        self.elements = 0
        self.depth = 0
        self.processing_instructions: list[tuple[str, str]] = []

    def start(self, tag: Any, attrs: dict[Any, Any]) -> Element:
        self.elements += 1
        self.depth += 1
        if self.depth > self.max_depth:
            raise SvgRefused(
                RefusalCode.SVG_TOO_DEEP, f"elements nest deeper than {self.max_depth} levels"
            )
        if self.elements > self.max_elements:
            raise SvgRefused(
                RefusalCode.SVG_TOO_MANY_ELEMENTS, f"more than {self.max_elements} elements"
            )
        return super().start(tag, attrs)

    def end(self, tag: Any) -> Element:
        self.depth -= 1
        return super().end(tag)

    def pi(self, target: str, data: str | None = None) -> Element:
        self.processing_instructions.append((target, data or ""))
        return Element("?pi")  # not inserted into the tree


def parse_svg_xml(raw: bytes, *, max_elements: int, max_depth: int) -> ParsedSvg:
    """The element tree of ``raw``; refuses a DOCTYPE, entities and malformed XML."""
    builder = _BoundedBuilder(max_elements=max_elements, max_depth=max_depth)
    parser = DefusedXMLParser(
        target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(raw)
        root = parser.close()
    except DefusedXmlException as exc:
        raise SvgRefused(
            RefusalCode.SVG_DOCTYPE,
            f"DOCTYPE and entity declarations are not allowed ({type(exc).__name__})",
        ) from None
    except ParseError as exc:
        raise SvgRefused(RefusalCode.SVG_NOT_SVG, f"not well-formed XML: {exc}") from None
    if not isinstance(root, Element):
        raise SvgRefused(RefusalCode.SVG_NOT_SVG, "no root element")
    return ParsedSvg(root, builder.processing_instructions)
