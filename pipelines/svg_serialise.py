"""The sanitised SVG tree and its deterministic serialisation (stable bytes → stable hash).

Rules: UTF-8, no XML declaration, no comments or processing instructions, the SVG namespace as
the default namespace on the root (plus ``xmlns:xlink`` only when an ``xlink:href`` is kept),
attributes sorted by name, empty elements self-closed, one trailing newline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"


@dataclass
class SvgNode:
    """One kept element: local ``tag``, attributes by qualified name, text, children, tail."""

    tag: str
    attributes: dict[str, str] = field(default_factory=dict)
    text: str = ""
    children: list[SvgNode] = field(default_factory=list)
    tail: str = ""

    def iter(self) -> list[SvgNode]:
        """This node and all its descendants, in document order."""
        found: list[SvgNode] = []
        stack = [self]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(node.children))
        return found


def serialise(root: SvgNode) -> bytes:
    """The bytes of the document rooted at ``root`` (same tree → same bytes)."""
    uses_xlink = any(name.startswith("xlink:") for node in root.iter() for name in node.attributes)
    namespaces = f' xmlns="{SVG_NS}"' + (f' xmlns:xlink="{XLINK_NS}"' if uses_xlink else "")
    parts: list[str] = []
    _write(root, parts, namespaces)
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def _write(root: SvgNode, parts: list[str], namespaces: str) -> None:
    # Iterative, so the output does not depend on the recursion limit.
    stack: list[tuple[SvgNode, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            parts.append(f"</{node.tag}>{_text(node.tail)}")
            continue
        extra = namespaces if node is root else ""
        attributes = "".join(
            f' {name}="{_attribute(value)}"' for name, value in sorted(node.attributes.items())
        )
        if not node.children and not node.text:
            parts.append(f"<{node.tag}{extra}{attributes}/>{_text(node.tail)}")
            continue
        parts.append(f"<{node.tag}{extra}{attributes}>{_text(node.text)}")
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.children))


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(value: str) -> str:
    return (
        _text(value)
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )
