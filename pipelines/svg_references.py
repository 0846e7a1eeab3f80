"""Internal references of a sanitised SVG (``#id``): no cycles, and bounded ``<use>`` expansion.

Every reference left is local (the policy refused the rest), but local ones can still hurt a
renderer: ``<use>`` chains that multiply (a "billion laughs" without entities), or references
that loop (a pattern filled with itself, a gradient whose template is itself). Both are refused
as ``svg_too_many_elements``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pipelines.errors import RefusalCode, SvgRefused
from pipelines.svg_serialise import SvgNode

_URL_TARGET = re.compile(r"url\(\s*['\"]?\s*#([^'\")\s]+)", re.IGNORECASE)
# Hyperlinks navigate, they do not render their target.
_NAVIGATION = frozenset({"a"})

Dependencies = Callable[[SvgNode], list[SvgNode]]


def check_references(root: SvgNode, max_elements: int) -> None:
    """Refuses reference cycles and ``<use>`` expansion past ``max_elements`` elements."""
    ids = {node.attributes["id"]: node for node in root.iter() if "id" in node.attributes}

    def href_target(node: SvgNode) -> SvgNode | None:
        href = node.attributes.get("href") or node.attributes.get("xlink:href") or ""
        return ids.get(href.strip()[1:]) if href.strip().startswith("#") else None

    def used(node: SvgNode) -> list[SvgNode]:
        target = href_target(node) if node.tag == "use" else None
        return [*node.children, *([target] if target is not None else [])]

    def referenced(node: SvgNode) -> list[SvgNode]:
        found = list(node.children)
        target = None if node.tag in _NAVIGATION else href_target(node)
        if target is not None:
            found.append(target)
        for name, value in node.attributes.items():
            if name not in {"href", "xlink:href", "id"}:
                found.extend(ids[t] for t in _URL_TARGET.findall(value) if t in ids)
        return found

    _post_order(root, referenced, lambda node, deps: 0)
    sizes = _post_order(
        root,
        used,
        lambda node, deps: min(1 + sum(deps), max_elements + 1),
    )
    if sizes[id(root)] > max_elements:
        raise SvgRefused(
            RefusalCode.SVG_TOO_MANY_ELEMENTS,
            f"<use> references expand to more than {max_elements} elements",
        )


def _post_order(
    root: SvgNode,
    dependencies: Dependencies,
    combine: Callable[[SvgNode, list[int]], int],
) -> dict[int, int]:
    """``combine`` of every node reachable from ``root``, dependencies first (iteratively, so
    long chains do not hit the recursion limit); a cycle is refused."""
    values: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[SvgNode, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            values[key] = combine(node, [values[id(dep)] for dep in dependencies(node)])
            on_path.discard(key)
            continue
        if key in values:
            continue
        if key in on_path:
            raise SvgRefused(
                RefusalCode.SVG_TOO_MANY_ELEMENTS, f"references to <{node.tag}> form a cycle"
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((dep, False) for dep in dependencies(node) if id(dep) not in values)
    return values
