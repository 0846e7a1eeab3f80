"""Which ``url(#id)`` references each element of a sanitised SVG gets (attributes, ``style``,
``<style>`` rules), for the reference bounds of `pipelines.svg_references`.

``<style>`` rules are matched with cssselect2, the matcher the renderer (cairosvg) uses, against
the whole tree. A rule the matcher cannot compile, and any reference inside an at-rule block
(``@media``, ``@supports``…), is taken to apply to every element (a browser may apply it);
so is every rule when more than `MAX_SELECTORS` selectors carry references (matching costs
selectors times elements).
The text of ``<text>`` children's tails is rendered as anonymous ``<tspan>`` elements, so rules
matching a bare ``<tspan>`` also apply to every text container.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import cssselect2
import tinycss2

from pipelines.svg_serialise import SVG_NS, XLINK_NS, SvgNode

# (property, target id) pairs: the property decides whether descendants inherit the reference.
Refs = list[tuple[str, str]]

_URL_TARGET = re.compile(r"url\(\s*['\"]?\s*#([^'\")\s]+)", re.IGNORECASE)
_NOT_URL_ATTRIBUTES = frozenset({"href", "xlink:href", "id", "class"})
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_TEXT_CONTAINERS = frozenset({"text", "tspan", "textPath", "a"})
# Selectors matched one by one against every element; past this, rules apply everywhere.
MAX_SELECTORS = 64


def attribute_refs(node: SvgNode) -> Refs:
    """References in ``node``'s presentation attributes and ``style`` attribute."""
    found: Refs = []
    for name, value in node.attributes.items():
        if name in _NOT_URL_ATTRIBUTES or ("(" not in value and "\\" not in value):
            continue
        declared = (
            _declaration_refs(tinycss2.parse_declaration_list(value)) if name == "style" else []
        )
        known = {target for _property, target in declared}
        found.extend(declared)
        found.extend((name, target) for target in _targets(value, []) - known)
    return found


@dataclass
class StyleRules:
    """The ``<style>`` rules holding references: ``rules[i]`` are rule i's references,
    ``matched`` the rules matching each node (by ``id()``), ``everywhere`` the references that
    apply to every element."""

    rules: list[Refs] = field(default_factory=list)
    matched: dict[int, list[int]] = field(default_factory=dict)
    everywhere: Refs = field(default_factory=list)


def style_rules(root: SvgNode, max_selectors: int = MAX_SELECTORS) -> StyleRules:
    """The rules with ``url(#id)`` references and the nodes they match. Past ``max_selectors``
    selectors, matching is skipped and every rule applies everywhere (bounded work)."""
    found = StyleRules()
    compiled: list[tuple[Any, int]] = []
    for style in (node for node in root.iter() if node.tag == "style"):
        rules = tinycss2.parse_stylesheet(style.text, skip_comments=True, skip_whitespace=True)
        for rule in rules:
            if rule.type == "qualified-rule":
                refs = _declaration_refs(tinycss2.parse_declaration_list(rule.content))
                if refs:
                    compiled.extend(_compiled(rule.prelude, refs, found))
            elif rule.type == "at-rule":
                tokens = [*rule.prelude, *(rule.content or [])]
                found.everywhere.extend(("*", target) for target in _targets("", tokens))
    if len(compiled) > max_selectors:
        found.everywhere.extend(ref for refs in found.rules for ref in refs)
        found.rules.clear()
        return found
    if not compiled:
        return found
    matcher = cssselect2.Matcher()
    for selector, index in compiled:
        matcher.add_selector(selector, index)
    nodes: dict[int, SvgNode] = {}
    tree = _element_tree(root, nodes)
    anonymous = _matched(
        matcher, cssselect2.ElementWrapper.from_xml_root(Element(f"{{{SVG_NS}}}tspan"))
    )
    for wrapper in cssselect2.ElementWrapper.from_xml_root(tree).iter_subtree():
        node = nodes[id(wrapper.etree_element)]
        indexes = set(_matched(matcher, wrapper))
        if node.tag in _TEXT_CONTAINERS and any(child.tail for child in node.children):
            indexes.update(anonymous)
        if indexes:
            found.matched[id(node)] = sorted(indexes)
    return found


def _compiled(prelude: list[Any], refs: Refs, found: StyleRules) -> list[tuple[Any, int]]:
    """A rule's selectors, each with the rule's index; an uncompilable rule applies everywhere."""
    try:
        selectors = cssselect2.compile_selector_list(prelude)
    except cssselect2.SelectorError:
        found.everywhere.extend(refs)
        return []
    found.rules.append(refs)
    return [(selector, len(found.rules) - 1) for selector in selectors]


def _matched(matcher: Any, wrapper: Any) -> list[int]:
    return [match[-1] for match in matcher.match(wrapper)]


def _declaration_refs(declarations: Iterable[Any]) -> Refs:
    return [
        (declaration.lower_name, target)
        for declaration in declarations
        if declaration.type == "declaration"
        for target in _targets(tinycss2.serialize(declaration.value), declaration.value)
    ]


def _targets(text: str, tokens: list[Any]) -> set[str]:
    """``#id`` targets in ``text`` (as written) and in ``tokens`` (CSS-unescaped)."""
    found = set(_URL_TARGET.findall(text))
    stack = list(tokens) or list(tinycss2.parse_component_value_list(text))
    while stack:
        token = stack.pop()
        values: list[str] = []
        if token.type == "url":
            values.append(token.value)
        elif token.type == "function" and token.lower_name == "url":
            values.extend(arg.value for arg in token.arguments if arg.type == "string")
        for attribute in ("arguments", "content"):
            child = getattr(token, attribute, None)
            if isinstance(child, list):
                stack.extend(child)
        found.update(v.strip()[1:].strip() for v in values if v.strip().startswith("#"))
    return found


def _element_tree(root: SvgNode, nodes: dict[int, SvgNode]) -> Element:
    """An ElementTree copy of ``root`` for selector matching; ``nodes`` maps copies back."""

    def copy(node: SvgNode) -> Element:
        element = Element(f"{{{SVG_NS}}}{node.tag}", _qualified(node.attributes))
        nodes[id(element)] = node
        return element

    top = copy(root)
    stack = [(root, top)]
    while stack:
        node, element = stack.pop()
        for child in node.children:
            child_element = copy(child)
            element.append(child_element)
            stack.append((child, child_element))
    return top


def _qualified(attributes: dict[str, str]) -> dict[str, str]:
    names = {"xlink:": f"{{{XLINK_NS}}}", "xml:": f"{{{_XML_NS}}}"}
    qualified: dict[str, str] = {}
    for name, value in attributes.items():
        prefix, _, local = name.rpartition(":")
        qualified[names[prefix + ":"] + local if prefix else name] = value
    return qualified
