"""Internal references of a sanitised SVG (``#id``): no cycles, and a bounded rendered size.

Every reference left is local (the policy refused the rest), but local ones can still hurt a
renderer: references that multiply (``<use>`` chains, or patterns whose shapes are filled with
the next pattern: a "billion laughs" without entities), or references that loop (a pattern
filled with itself, a gradient whose template is itself). Both are refused as
``svg_too_many_elements``.

What an element renders is its children plus everything it references: a ``<use>``/template/
``feImage`` ``href``, and every ``url(#id)`` in its attributes, its ``style`` attribute and the
``<style>`` rules that match it (`pipelines.svg_style_refs`), plus the inherited properties'
(``fill``, ``stroke``, ``marker``…) references of its ancestors. An ``href`` target renders in
the referencing element's context (a ``<use>``d group or a pattern's template paints with the
referencing element's inherited properties), so its size is multiplied by what is passed on.
Counting that, with shared definitions counted once per reference, bounds the work of rendering
the document (by design an overestimate of what cairosvg draws: each reference is counted
fully, per element, and a marker once per number or command of its element's path data).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

from pipelines.errors import RefusalCode, SvgRefused
from pipelines.svg_serialise import SvgNode
from pipelines.svg_style_refs import Refs, StyleRules, attribute_refs, style_rules

# Hyperlinks navigate, they do not render their target.
_NAVIGATION = frozenset({"a"})
# Properties the renderer does not pass on to descendants (cairosvg's NOT_INHERITED_ATTRIBUTES).
_NOT_INHERITED = frozenset({"clip", "clip-path", "filter", "mask"})
# Elements that never paint, so inherited or stylesheet references do not render through them.
_NOT_PAINTED = frozenset({"linearGradient", "radialGradient", "stop", "title", "desc", "style"})

# Properties drawing their target at every vertex ("*"/"style": a reference whose property is
# unknown, from an at-rule or a style attribute the declaration parser did not read).
_MARKER_PROPERTIES = frozenset({"marker", "marker-start", "marker-mid", "marker-end", "*", "style"})
_NUMBER_OR_COMMAND = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[A-Za-z]")

Dependencies = Callable[[SvgNode], list[SvgNode]]


class Summable(Protocol):
    """What `Expansion.total` adds up: values with ``+`` and ``* int``."""

    def __add__(self, other: Self, /) -> Self: ...

    def __mul__(self, factor: int, /) -> Self: ...


W = TypeVar("W", bound=Summable)
V = TypeVar("V")


@dataclass
class _Referenced:
    """What one element renders by reference (besides its children)."""

    refs: list[SvgNode]  # url(#id) targets (own, its rules', inherited), each counted once
    markers: list[SvgNode]  # marker targets: drawn once per vertex
    templates: list[SvgNode]  # href targets (<use>, templates, feImage), drawn in its context
    passed: SvgNode | None  # the inheritable references the href targets render with
    passed_markers: SvgNode | None
    vertices: int  # an upper bound on the element's vertices (path data, points)


class _Graph:
    """The reference graph. Sets of references are shared nodes (tag ``#refs``) whose size is
    the sum of their members', so an inherited or stylesheet reference costs one edge per
    element, not one per (element, reference): the check stays linear in the document."""

    def __init__(self, root: SvgNode) -> None:
        self.ids: dict[str, list[SvgNode]] = {}
        for node in root.iter():
            if "id" in node.attributes:
                self.ids.setdefault(node.attributes["id"], []).append(node)
        self.groups: dict[int, list[SvgNode]] = {}
        self.elements: dict[int, _Referenced] = {}

    def resolve(self, names: Iterable[str]) -> list[SvgNode]:
        """The elements ``names`` designate (an id held twice designates both)."""
        return [node for name in sorted(set(names)) for node in self.ids.get(name, [])]

    def group(self, members: list[SvgNode], parent: SvgNode | None = None) -> SvgNode | None:
        """A shared node standing for ``members`` plus ``parent``'s members (None if empty)."""
        if not members:
            return parent
        node = SvgNode("#refs")
        self.groups[id(node)] = [*members, *([parent] if parent is not None else [])]
        return node

    def dependencies(self, node: SvgNode) -> list[SvgNode]:
        if id(node) in self.groups:
            return self.groups[id(node)]
        found = self.elements.get(id(node))
        if found is None:
            return node.children
        passed = [n for n in (found.passed, found.passed_markers) if n is not None]
        return [
            *node.children,
            *found.refs,
            *found.markers,
            *found.templates,
            *(passed if found.templates else []),
        ]


class _RuleGroups:
    """Per ``<style>`` rule (and for the rules applying everywhere), shared nodes for all its
    references, the inheritable ones and the marker ones (built once, on first use)."""

    def __init__(self, graph: _Graph, rules: StyleRules) -> None:
        self.graph = graph
        self.rules = rules
        self.built: dict[int, tuple[SvgNode | None, SvgNode | None, SvgNode | None]] = {}

    def of(self, index: int) -> tuple[SvgNode | None, SvgNode | None, SvgNode | None]:
        """(all, inheritable, markers) of rule ``index`` (-1: the everywhere references)."""
        if index not in self.built:
            refs = self.rules.everywhere if index < 0 else self.rules.rules[index]
            self.built[index] = _split(self.graph, refs)
        return self.built[index]


def _split(graph: _Graph, refs: Refs) -> tuple[SvgNode | None, SvgNode | None, SvgNode | None]:
    return (
        graph.group(graph.resolve(t for _p, t in refs)),
        graph.group(graph.resolve(t for p, t in refs if p not in _NOT_INHERITED)),
        graph.group(graph.resolve(t for p, t in refs if p in _MARKER_PROPERTIES)),
    )


@dataclass(frozen=True)
class Expansion:
    """What a document renders once its references are followed: the reference graph, the
    number of elements each node renders (``counts``, by ``id()``, capped at the limit + 1)
    and the most vertices any element has (markers passed on through an href are drawn at
    every vertex of whatever they end up on)."""

    root: SvgNode
    graph: _Graph
    counts: dict[int, int]
    most_vertices: int

    def total(
        self,
        own: Callable[[SvgNode], W],
        zero: W,
        limit: Callable[[W], W],
        drawn: Callable[[SvgNode, SvgNode], bool],
    ) -> W:
        """The sum of ``own(element)`` over every element rendered, following references
        exactly as the element count does: a referenced subtree counts once per reference, an
        href target's elements each once more for every inheritable reference passed on, a
        marker once per vertex. A child counts with its parent only when ``drawn(parent,
        child)`` (a definition is drawn where it is referenced, not where it stands); ``limit``
        caps each partial sum (so numbers stay small)."""
        graph, counts, most_vertices = self.graph, self.counts, self.most_vertices

        def combine(node: SvgNode, total_of: Callable[[SvgNode], W]) -> W:
            members = graph.groups.get(id(node))
            if members is not None:
                return limit(_sum((total_of(member) for member in members), zero))
            children = (total_of(child) for child in node.children if drawn(node, child))
            total = own(node) + _sum(children, zero)
            found = graph.elements.get(id(node))
            if found is not None:
                total = total + _sum((total_of(target) for target in found.refs), zero)
                total = total + _sum((total_of(t) for t in found.markers), zero) * found.vertices
                passed = zero
                if found.templates and found.passed is not None:
                    passed = passed + total_of(found.passed)
                if found.templates and found.passed_markers is not None:
                    passed = passed + total_of(found.passed_markers) * most_vertices
                for target in found.templates:
                    total = total + total_of(target) + passed * counts[id(target)]
            return limit(total)

        return _post_order(self.root, graph.dependencies, combine)[id(self.root)]


def _sum(values: Iterable[W], zero: W) -> W:
    total = zero
    for value in values:
        total = total + value
    return total


def check_references(root: SvgNode, max_elements: int) -> None:
    """Refuses reference cycles and a rendered size past ``max_elements`` elements."""
    expand_references(root, max_elements)


def expand_references(root: SvgNode, max_elements: int) -> Expansion:
    """The document's `Expansion`; refuses reference cycles and a rendered size past
    ``max_elements`` elements (``svg_too_many_elements``)."""
    graph = _Graph(root)
    _collect(root, graph)
    cap = max_elements + 1
    most_vertices = max(_vertex_bound(node) for node in root.iter())

    def size(node: SvgNode, size_of: Callable[[SvgNode], int]) -> int:
        members = graph.groups.get(id(node))
        if members is not None:
            return min(sum(size_of(member) for member in members), cap)
        total = 1 + sum(size_of(child) for child in node.children)
        found = graph.elements.get(id(node))
        if found is not None:
            total += sum(size_of(target) for target in found.refs)
            total += found.vertices * sum(size_of(target) for target in found.markers)
            # Every element of an href target paints with what this element passes on.
            context = 1
            if found.templates and found.passed is not None:
                context += size_of(found.passed)
            if found.templates and found.passed_markers is not None:
                context += most_vertices * size_of(found.passed_markers)
            total += sum(size_of(target) * context for target in found.templates)
        return min(total, cap)

    sizes = _post_order(root, graph.dependencies, size)
    if sizes[id(root)] > max_elements:
        raise SvgRefused(
            RefusalCode.SVG_TOO_MANY_ELEMENTS,
            f"references (<use>, url(#id), href) expand to more than {max_elements} elements",
        )
    return Expansion(root, graph, sizes, most_vertices)


def _collect(root: SvgNode, graph: _Graph) -> None:
    """Fills ``graph.elements``: walks the tree with the inherited reference groups."""
    rules = _RuleGroups(graph, style_rules(root))
    everywhere = rules.of(-1)
    # (node, inherited references, inherited marker references), from the root down.
    stack: list[tuple[SvgNode, SvgNode | None, SvgNode | None]] = [(root, None, None)]
    while stack:
        node, inherited, inherited_markers = stack.pop()
        own = attribute_refs(node)
        href = (node.attributes.get("href") or node.attributes.get("xlink:href") or "").strip()
        named = {href[1:]} if node.tag not in _NAVIGATION and href.startswith("#") else set()
        templates = graph.resolve(named)
        if node.tag in _NOT_PAINTED:
            refs = graph.resolve(t for _p, t in own)
            if refs or templates:
                graph.elements[id(node)] = _Referenced(refs, [], templates, None, None, 0)
            stack.extend((child, inherited, inherited_markers) for child in node.children)
            continue
        matched = [rules.of(index) for index in _matched_rules(rules, node)]
        refs = [
            *graph.resolve(t for _p, t in own),
            *(group for group in (everywhere[0], inherited) if group is not None),
            *(all_ for all_, _inh, _mk in matched if all_ is not None),
        ]
        markers = [
            *graph.resolve(t for p, t in own if p in _MARKER_PROPERTIES),
            *(group for group in (everywhere[2], inherited_markers) if group is not None),
            *(mk for _all, _inh, mk in matched if mk is not None),
        ]
        passed = graph.group(
            [
                *graph.resolve(t for p, t in own if p not in _NOT_INHERITED),
                *(inh for _all, inh, _mk in matched if inh is not None),
            ],
            inherited,
        )
        passed_markers = graph.group(
            [
                *graph.resolve(t for p, t in own if p in _MARKER_PROPERTIES),
                *(mk for _all, _inh, mk in matched if mk is not None),
            ],
            inherited_markers,
        )
        if refs or markers or templates:
            graph.elements[id(node)] = _Referenced(
                refs, markers, templates, passed, passed_markers, _vertex_bound(node)
            )
        stack.extend((child, passed, passed_markers) for child in node.children)


def _matched_rules(rules: _RuleGroups, node: SvgNode) -> list[int]:
    """The indexes of the ``<style>`` rules matching ``node``."""
    return rules.rules.matched.get(id(node), [])


def _vertex_bound(node: SvgNode) -> int:
    """At least the number of vertices markers are drawn at: every vertex needs a number or a
    command in ``d``/``points`` (a ``<line>`` has 2)."""
    data = node.attributes.get("d", "") + " " + node.attributes.get("points", "")
    return 2 + len(_NUMBER_OR_COMMAND.findall(data))


def _post_order(
    root: SvgNode,
    dependencies: Dependencies,
    combine: Callable[[SvgNode, Callable[[SvgNode], V]], V],
) -> dict[int, V]:
    """``combine`` of every node reachable from ``root``, dependencies first (iteratively, so
    long chains do not hit the recursion limit); a cycle is refused."""
    values: dict[int, V] = {}
    on_path: set[int] = set()
    stack: list[tuple[SvgNode, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            values[key] = combine(node, lambda dep: values[id(dep)])
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
