"""CSS checks of the SVG policy: every ``url()`` must point inside the document.

CSS is tokenised (tinycss2), not matched with regular expressions, so escapes (``u\\72l(``),
comments and quoting cannot hide a reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import tinycss2

from pipelines.errors import RefusalCode, SvgRefused

_SCRIPTED_FUNCTIONS = frozenset({"expression", "javascript"})
# Functions whose string arguments are URLs, like url()'s.
_URL_FUNCTIONS = frozenset({"url", "src", "image", "image-set", "-webkit-image-set"})


def check_stylesheet(css: str) -> None:
    """Refuses a ``<style>`` element's CSS with an ``@import`` or an outside ``url()``."""
    rules = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)
    for rule in rules:
        if rule.type == "at-rule" and rule.lower_at_keyword in {"import", "namespace"}:
            raise SvgRefused(
                RefusalCode.SVG_EXTERNAL_REFERENCE, f"@{rule.lower_at_keyword} is not allowed"
            )
    _check_tokens(_walk(rules))


def check_declarations(css: str) -> None:
    """Refuses a ``style`` attribute (or a presentation attribute) with an outside ``url()``."""
    _check_tokens(_walk(tinycss2.parse_component_value_list(css, skip_comments=True)))


def needs_css_check(value: str) -> bool:
    """Whether an attribute value could hold a CSS reference (cheap pre-filter)."""
    return "(" in value or "\\" in value


def _check_tokens(tokens: Iterable[Any]) -> None:
    for token in tokens:
        if token.type == "url":
            _check_reference(token.value)
        elif token.type == "function" and token.lower_name in _URL_FUNCTIONS:
            strings = [arg.value for arg in token.arguments if arg.type == "string"]
            for target in strings or ([""] if token.lower_name == "url" else []):
                _check_reference(target)
        elif token.type == "function" and token.lower_name in _SCRIPTED_FUNCTIONS:
            raise SvgRefused(RefusalCode.SVG_SCRIPT, f"CSS {token.lower_name}() is not allowed")
        elif token.type == "at-keyword" and token.lower_value == "import":
            raise SvgRefused(RefusalCode.SVG_EXTERNAL_REFERENCE, "@import is not allowed")


def _check_reference(target: str) -> None:
    if not is_local_reference(target):
        raise SvgRefused(
            RefusalCode.SVG_EXTERNAL_REFERENCE,
            f"url({target[:80]!r}) points outside the document; only url(#id) is allowed",
        )


def is_local_reference(target: str) -> bool:
    """``#id``: a reference to an element of the same document."""
    stripped = target.strip()
    return (
        len(stripped) > 1 and stripped.startswith("#") and not any(ch.isspace() for ch in stripped)
    )


def _walk(nodes: Iterable[Any]) -> Iterator[Any]:
    """Every token in ``nodes``, descending into blocks, functions, rules and declarations."""
    stack = list(nodes)[::-1]
    while stack:
        node = stack.pop()
        yield node
        children: list[Any] = []
        for attribute in ("prelude", "content", "arguments", "value"):
            child = getattr(node, attribute, None)
            if isinstance(child, list):
                children.extend(child)
        stack.extend(reversed(children))
