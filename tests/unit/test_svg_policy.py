"""The SVG policy as pure functions: what is refused (with which code), stripped, and stored."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import time
from pathlib import Path

import pytest
from PIL import Image

from pipelines.errors import RefusalCode, SvgRefused
from pipelines.svg_policy import SvgLimits, original_key, sanitise_svg

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "malicious"
TABLE = list(csv.DictReader((CORPUS / "expected.csv").open()))
SVG_ROWS = [row for row in TABLE if row["kind"] == "svg"]
NS = 'xmlns="http://www.w3.org/2000/svg"'


def refusal(raw: bytes | str, limits: SvgLimits | None = None) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    with pytest.raises(SvgRefused) as caught:
        sanitise_svg(data, limits)
    return caught.value.code


def stored(raw: str) -> str:
    return sanitise_svg(raw.encode()).data.decode()


def test_the_table_lists_every_file_of_the_corpus_and_only_those() -> None:
    on_disk = {p.name for p in CORPUS.iterdir()} - {"expected.csv", "make_zips.py"}
    assert {row["file"] for row in TABLE} == on_disk
    assert {row["code"] for row in TABLE} <= {code.value for code in RefusalCode}


@pytest.mark.parametrize("row", SVG_ROWS, ids=[row["file"] for row in SVG_ROWS])
def test_every_corpus_svg_is_refused_with_its_code(row: dict[str, str]) -> None:
    assert refusal((CORPUS / row["file"]).read_bytes()) == row["code"]


def test_a_clean_svg_is_normalised_deterministically() -> None:
    raw = (
        '<?xml version="1.0"?>\n<!-- c -->\n'
        f'<svg {NS} xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" '
        'viewBox="0,0,24,24"  sodipodi:docname="a.svg">\n'
        '  <sodipodi:namedview id="nv"/>\n'
        '  <metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>\n'
        '  <path stroke="#000" d="M1 1"/>\n'
        '  <animate attributeName="x" to="3"/>\n'
        "  <text>a<tspan>b</tspan> c</text>\n"
        "</svg>\n"
    )
    result = sanitise_svg(raw.encode())
    expected = (
        f'<svg {NS} height="24" viewBox="0 0 24 24" width="24"><path d="M1 1" stroke="#000"/>'
        "<text>a<tspan>b</tspan> c</text></svg>\n"
    ).encode()
    assert result.data == expected
    assert result.content_hash == hashlib.sha256(expected).hexdigest()
    assert result.key == original_key(result.content_hash) == f"originals/{result.content_hash}.svg"
    assert (result.width, result.height, result.size_bytes) == (24, 24, len(expected))
    assert sanitise_svg(result.data) == result  # sanitising is idempotent


def test_attribute_order_and_whitespace_do_not_change_the_hash() -> None:
    one = sanitise_svg(f'<svg {NS} viewBox="0 0 8 8"><rect x="1" y="2"/></svg>'.encode())
    two = sanitise_svg(
        f'<svg  viewBox="0 0 8 8"\n {NS}>\n  <rect y="2"   x="1" />\n</svg>'.encode()
    )
    assert one.content_hash == two.content_hash


def test_the_view_box_is_derived_from_width_and_height() -> None:
    assert stored(f'<svg {NS} width="2in" height="48"/>') == (
        f'<svg {NS} height="48" viewBox="0 0 192 48" width="192"/>\n'
    )


def test_width_follows_the_view_box_aspect_when_only_height_is_given() -> None:
    result = sanitise_svg(f'<svg {NS} height="12" viewBox="0 0 48 24"/>'.encode())
    assert (result.width, result.height) == (24, 12)


def test_an_svg_without_namespace_is_stored_in_the_svg_namespace() -> None:
    assert stored('<svg viewBox="0 0 4 4"><g><path d="M0 0"/></g></svg>') == (
        f'<svg {NS} height="4" viewBox="0 0 4 4" width="4"><g><path d="M0 0"/></g></svg>\n'
    )


def test_local_references_are_kept() -> None:
    raw = (
        f'<svg {NS} xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 4 4">'
        '<defs><clipPath id="c"><rect width="2" height="2"/></clipPath></defs>'
        "<style>.a { fill: url(#c) }</style>"
        '<g clip-path="url(#c)" style="mask: url( \'#c\' )">'
        '<use xlink:href="#c"/><use href="#c"/></g>'
        "</svg>"
    )
    out = stored(raw)
    assert 'xlink:href="#c"' in out
    assert 'href="#c"' in out
    assert "<style>.a { fill: url(#c) }</style>" in out
    assert 'xmlns:xlink="http://www.w3.org/1999/xlink"' in out


def test_raster_data_images_are_allowed_in_image_only() -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    raw = f'<svg {NS} viewBox="0 0 4 4"><image href="{png}" width="4" height="4"/></svg>'
    assert png in stored(raw)
    fake = "data:image/png;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4="
    assert refusal(raw.replace(png, fake)) == "svg_external_reference"
    in_use = f'<svg {NS} viewBox="0 0 4 4"><use href="{png}"/></svg>'
    assert refusal(in_use) == "svg_external_reference"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('<a href="mailto:x@example.com"><path d="M0 0"/></a>', "svg_external_reference"),
        ('<use href="sprite.svg#a"/>', "svg_external_reference"),
        ('<use href=""/>', "svg_external_reference"),
        ('<rect style="fill:URL(http://x/y)"/>', "svg_external_reference"),
        ('<rect filter="url(other.svg#f)"/>', "svg_external_reference"),
        ("<style>@font-face { src: url(https://x/f.woff) }</style>", "svg_external_reference"),
        ('<style>a { b: image-set("https://x/1.png" 1x) }</style>', "svg_external_reference"),
        ("<style>a { width: expression(alert(1)) }</style>", "svg_script"),
        ('<rect xml:base="http://evil.example/"/>', "svg_external_reference"),
        ('<set attributeName="href" to="javascript:alert(1)"/>', "svg_script"),
        ('<rect onmouseover="x()"/>', "svg_event_handler"),
        ('<handler type="text/ecmascript">alert(1)</handler>', "svg_script"),
        ("<SCRIPT>alert(1)</SCRIPT>", "svg_script"),
        (
            '<metadata><script xmlns="http://www.w3.org/1999/xhtml">1</script></metadata>',
            "svg_script",
        ),
        ("<g><foreignObject/></g>", "svg_foreign_object"),
    ],
)
def test_hostile_constructs_are_refused(body: str, code: str) -> None:
    assert refusal(f'<svg {NS} viewBox="0 0 4 4">{body}</svg>') == code


def test_limits_are_settings() -> None:
    small = SvgLimits(max_bytes=100, max_elements=3, max_depth=2, max_dimension=10)
    assert refusal(f'<svg {NS} viewBox="0 0 4 4">' + " " * 100 + "</svg>", small) == "svg_too_large"
    assert refusal(f'<svg {NS} viewBox="0 0 4 4"><g><g/></g></svg>', small) == "svg_too_deep"
    many = f'<svg {NS} viewBox="0 0 4 4"><g/><g/><g/></svg>'
    assert refusal(many, small) == "svg_too_many_elements"
    assert refusal(f'<svg {NS} viewBox="0 0 11 4"/>', small) == "svg_dimensions"
    assert sanitise_svg(f'<svg {NS} viewBox="0 0 10 4"><g/></svg>'.encode(), small).width == 10


def test_use_expansion_counts_against_the_element_limit() -> None:
    limits = SvgLimits(max_elements=20)
    chain = f'<svg {NS} viewBox="0 0 4 4"><g id="a"><path/><path/><path/></g>'
    assert sanitise_svg((chain + '<use href="#a"/></svg>').encode(), limits).width == 4
    five = chain + '<use href="#a"/>' * 5 + "</svg>"
    assert refusal(five, limits) == "svg_too_many_elements"


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ('width="abc" height="4"', "svg_dimensions"),
        ('viewBox="0 0 4"', "svg_dimensions"),
        ('viewBox="0 0 0 4"', "svg_dimensions"),
        ('width="-4" height="4"', "svg_dimensions"),
        ('width="4"', "svg_dimensions"),
        ('width="1e400" height="4"', "svg_dimensions"),
    ],
)
def test_bad_dimensions_are_refused(attributes: str, code: str) -> None:
    assert refusal(f"<svg {NS} {attributes}/>") == code


def test_a_non_svg_root_is_refused() -> None:
    assert refusal('<svg xmlns="http://example.com/not-svg" viewBox="0 0 4 4"/>') == "svg_not_svg"
    assert refusal("<g/>") == "svg_not_svg"
    assert refusal("   ") == "svg_not_svg"


def test_an_embedded_image_larger_than_the_dimension_limit_is_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    raw = f'<svg {NS} viewBox="0 0 4 4"><image href="{uri}" width="4" height="4"/></svg>'
    assert sanitise_svg(raw.encode(), SvgLimits(max_dimension=8)).width == 4
    assert refusal(raw, SvgLimits(max_dimension=7)) == "svg_dimensions"


@pytest.mark.parametrize(
    "body",
    [
        '<pattern id="p" width="2" height="2"><rect fill="url(#p)"/></pattern>',
        '<linearGradient id="g" href="#g"/>',
        '<linearGradient id="a" xlink:href="#b"/><linearGradient id="b" xlink:href="#a"/>',
        '<clipPath id="c"><use href="#r"/></clipPath><rect id="r" style="clip-path:url(#c)"/>',
    ],
)
def test_reference_cycles_are_refused(body: str) -> None:
    xlink = 'xmlns:xlink="http://www.w3.org/1999/xlink"'
    assert refusal(f'<svg {NS} {xlink} viewBox="0 0 4 4">{body}</svg>') == ("svg_too_many_elements")


def test_acyclic_references_and_links_to_the_root_are_kept() -> None:
    raw = (
        f'<svg {NS} id="top" viewBox="0 0 4 4">'
        '<defs><linearGradient id="base"><stop offset="0"/></linearGradient>'
        '<linearGradient id="g" href="#base"/></defs>'
        '<a href="#top"><rect fill="url(#g)" width="4" height="4"/></a></svg>'
    )
    assert 'href="#base"' in stored(raw)


def test_markup_inside_a_style_element_is_refused() -> None:
    # Stripping drops <g> but keeps the text around it: the checked CSS ("/*" opens a comment
    # that swallows the rest) would differ from the stored CSS (an @import).
    hidden = (
        "<style><g>/*</g>@import url(http://evil.example/x.css); "
        "rect{fill:url(http://evil.example/a)}</style>"
    )
    assert refusal(f'<svg {NS} viewBox="0 0 4 4">{hidden}</svg>') == "svg_external_reference"
    foreign = '<style>.a{fill:red}<x:b xmlns:x="urn:x">/*</x:b>*/</style>'
    assert refusal(f'<svg {NS} viewBox="0 0 4 4">{foreign}</svg>') == "svg_external_reference"
    assert refusal(f'<svg {NS} viewBox="0 0 4 4"><style><title/></style></svg>') == (
        "svg_external_reference"
    )


def test_css_text_split_by_cdata_is_checked_whole() -> None:
    raw = (
        f'<svg {NS} viewBox="0 0 4 4"><style>/*<![CDATA[*/@import url(x.css);/*]]>*/</style></svg>'
    )
    assert refusal(raw) == "svg_external_reference"


def _pattern_chain(depth: int, shape: str, wrap: str = "{}", style: str = "") -> str:
    """``depth`` patterns, each with 8 shapes painted (via ``shape``/``wrap``) by the next."""
    patterns = "".join(
        f'<pattern id="p{i}" class="l{i}" width="8" height="1">'
        + wrap.replace("{next}", f"#p{i + 1}")
        .replace("{}", shape * 8)
        .replace("{next}", f"#p{i + 1}")
        + "</pattern>"
        for i in range(depth)
    )
    return (
        f'<svg {NS} viewBox="0 0 64 64">{style}<defs>{patterns}</defs>'
        '<rect width="64" height="64" fill="url(#p0)"/></svg>'
    )


@pytest.mark.parametrize(
    ("shape", "wrap", "style"),
    [
        ('<rect width="1" height="1" fill="url({next})"/>', "{}", ""),
        ('<rect width="1" height="1" style="stroke: url({next})"/>', "{}", ""),
        ('<rect width="1" height="1" style="fill: u\\72l({next})"/>', "{}", ""),
        ('<rect width="1" height="1" mask="url({next})"/>', "{}", ""),
        ('<rect width="1" height="1" filter="url({next})"/>', "{}", ""),
        ('<rect width="1" height="1" clip-path="url({next})"/>', "{}", ""),
        ('<path d="M0 0h1" marker-end="url({next})"/>', "{}", ""),
        ('<use href="{next}"/>', "{}", ""),
        # fill is inherited: every rect of the group is painted with the next pattern
        ('<rect width="1" height="1"/>', '<g fill="url({next})">{}</g>', ""),
        (
            '<rect width="1" height="1"/>',
            "{}",
            "<style>"
            + "".join(f".l{i} rect {{ fill: url(#p{i + 1}) }}" for i in range(6))
            + "</style>",
        ),
    ],
)
def test_references_that_multiply_count_against_the_element_limit(
    shape: str, wrap: str, style: str
) -> None:
    # 6 levels of 8 shapes: 8**6 = 262,144 rendered shapes from a 3 KB file.
    assert refusal(_pattern_chain(6, shape, wrap, style)) == "svg_too_many_elements"
    assert sanitise_svg(_pattern_chain(2, shape, wrap, style).encode()).width == 64


def test_the_corpus_pattern_bomb_is_small() -> None:
    assert (CORPUS / "pattern_bomb.svg").stat().st_size < 3_000


def test_every_reference_is_counted_once_per_referencing_element() -> None:
    # svg 1 + defs (1 + pattern 3) + 2 * (rect 1 + pattern 3) = 13 rendered elements.
    raw = (
        f'<svg {NS} viewBox="0 0 4 4"><defs><pattern id="p"><rect/><rect/></pattern></defs>'
        '<rect fill="url(#p)"/><rect style="fill:url(#p); stroke:url(#p)"/></svg>'
    )
    assert sanitise_svg(raw.encode(), SvgLimits(max_elements=13)).width == 4
    assert refusal(raw, SvgLimits(max_elements=12)) == "svg_too_many_elements"
    styled = raw.replace("<defs>", "<style>.c { fill: url(#p) }</style><defs>").replace(
        '<rect fill="url(#p)"/>', '<rect class="c"/><rect class="c"/>'
    )
    # + style 1, and the class rule adds one more rect rendering the pattern (1 + 3).
    assert sanitise_svg(styled.encode(), SvgLimits(max_elements=18)).width == 4
    assert refusal(styled, SvgLimits(max_elements=17)) == "svg_too_many_elements"


@pytest.mark.parametrize(
    "body",
    [
        '<style>.c{fill:url(#p0)}</style><pattern id="p0" width="2" height="2">'
        '<rect class="c" width="1" height="1"/></pattern><rect class="c" width="4" height="4"/>',
        '<style>pattern > rect { stroke: url("#p") }</style><pattern id="p"><rect/></pattern>',
        '<style>#r { mask: url(#m) }</style><mask id="m"><use href="#r"/></mask><rect id="r"/>',
        # the text after a <tspan> is rendered as an anonymous tspan, matched as a root
        "<style>tspan:root{fill:url(#p)}</style>"
        '<pattern id="p"><text>a<tspan>b</tspan>c</text></pattern>',
        # rules the selector engine cannot compile, and at-rule blocks, apply everywhere
        '<style>rect:nosuchpseudo(1) { fill: url(#p) }</style><pattern id="p"><rect/></pattern>',
        '<style>@media screen { .x { fill: url(#p) } }</style><pattern id="p"><rect/></pattern>',
        '<g fill="url(#p)"><pattern id="p"><rect/></pattern></g>',
    ],
)
def test_reference_cycles_through_style_rules_and_inheritance_are_refused(body: str) -> None:
    assert refusal(f'<svg {NS} viewBox="0 0 4 4">{body}</svg>') == "svg_too_many_elements"


def test_style_rule_references_that_do_not_loop_are_kept() -> None:
    # The shape of an Illustrator export: classes painting with gradients and clipping paths.
    raw = (
        f'<svg {NS} viewBox="0 0 24 24"><defs><style>.cls-1{{fill:url(#lg)}}'
        ".cls-2{clip-path:url(#cp)}.cls-3{fill:#fff}</style>"
        '<linearGradient id="lg"><stop offset="0"/><stop offset="1"/></linearGradient>'
        '<clipPath id="cp"><rect class="cls-3" width="24" height="24"/></clipPath></defs>'
        '<g class="cls-2"><path class="cls-1" d="M0 0h1"/>'
        '<text class="cls-1">a<tspan>b</tspan> c</text></g></svg>'
    )
    out = stored(raw)
    assert "<style>.cls-1{fill:url(#lg)}.cls-2{clip-path:url(#cp)}.cls-3{fill:#fff}</style>" in out
    # a gradient's own stops never paint, so a fill it would pass on does not loop
    assert (
        sanitise_svg(
            f'<svg {NS} viewBox="0 0 4 4"><g fill="url(#g)"><linearGradient id="g"><stop/>'
            '</linearGradient><rect fill="url(#g)"/></g></svg>'.encode()
        ).width
        == 4
    )


def _template_chain(depth: int) -> str:
    """Pattern ``p{i}`` borrows the 8 shapes of ``t{i}`` (href) and paints them (fill is
    inherited) with ``p{i+1}``: 8**depth shapes although no shape names a pattern."""
    shapes = '<rect width="1" height="1"/>' * 8
    patterns = "".join(
        f'<pattern id="t{i}" width="8" height="1">{shapes}</pattern>'
        f'<pattern id="p{i}" href="#t{i}" fill="url(#p{i + 1})"/>'
        for i in range(depth)
    )
    return (
        f'<svg {NS} viewBox="0 0 64 64"><defs>{patterns}</defs>'
        '<rect width="64" height="64" fill="url(#p0)"/></svg>'
    )


def test_shapes_borrowed_through_an_href_paint_with_the_borrowers_properties() -> None:
    assert refusal(_template_chain(6)) == "svg_too_many_elements"
    assert sanitise_svg(_template_chain(2).encode()).width == 64
    # svg 1 + defs (1 + p 3 + t 3) + use (1 + p 3 + t 3 * (1 + p 3)) = 24
    raw = (
        f'<svg {NS} viewBox="0 0 4 4"><defs><pattern id="p"><rect/><rect/></pattern>'
        '<g id="t"><rect/><rect/></g></defs><use href="#t" fill="url(#p)"/></svg>'
    )
    assert sanitise_svg(raw.encode(), SvgLimits(max_elements=24)).width == 4
    assert refusal(raw, SvgLimits(max_elements=23)) == "svg_too_many_elements"


def test_an_id_used_twice_resolves_to_every_element_holding_it() -> None:
    # Renderers disagree on which one wins (browsers: the first; cairosvg: the last).
    raw = (
        f'<svg {NS} viewBox="0 0 4 4"><pattern id="p"><rect fill="url(#p)"/></pattern>'
        '<linearGradient id="p"/><rect fill="url(#p)"/></svg>'
    )
    assert refusal(raw) == "svg_too_many_elements"


def _marker_chain(depth: int) -> str:
    """Marker ``m{i}`` holds one 8-vertex path drawing ``m{i+1}`` at each of its vertices."""
    d = "M0 0" + "".join(f" L{k} {k % 2}" for k in range(1, 8))
    markers = "".join(
        f'<marker id="m{i}"><path d="{d}" stroke="#000" marker-mid="url(#m{i + 1})"/></marker>'
        for i in range(depth)
    )
    body = f'<defs>{markers}</defs><path d="{d}" marker-mid="url(#m0)"/>'
    return f'<svg {NS} viewBox="0 0 64 64">{body}</svg>'


def test_markers_count_once_per_vertex() -> None:
    # 6 levels: 6**6 = 46,656 markers drawn from 1.2 KB (1.8 s to render at 5 levels).
    assert refusal(_marker_chain(6)) == "svg_too_many_elements"
    # svg 1 + marker 2 + path (1 + marker 2 + 8 vertices at most ("M0 0 L1 1": 6 tokens + 2) * 2)
    raw = (
        f'<svg {NS} viewBox="0 0 4 4"><marker id="m"><path/></marker>'
        '<path d="M0 0 L1 1" marker-mid="url(#m)"/></svg>'
    )
    assert sanitise_svg(raw.encode(), SvgLimits(max_elements=22)).width == 4
    assert refusal(raw, SvgLimits(max_elements=21)) == "svg_too_many_elements"
    arrow = (
        f'<svg {NS} viewBox="0 0 24 24"><defs><marker id="head" orient="auto">'
        '<path d="M0 0L4 2L0 4z"/></marker></defs>'
        '<path d="M2 12H20" stroke="#000" marker-end="url(#head)"/></svg>'
    )
    assert sanitise_svg(arrow.encode()).width == 24


def test_past_64_selectors_with_references_every_rule_applies_everywhere() -> None:
    # Matching costs selectors x elements; past the bound the check stays conservative.
    def doc(rules: int) -> str:
        css = "".join(f".c{i} {{ fill: url(#g) }}" for i in range(rules - 1))
        return (
            f'<svg {NS} viewBox="0 0 4 4"><style>{css}.c {{ fill: url(#p) }}</style>'
            '<linearGradient id="g"/><pattern id="p"><rect/></pattern><rect class="c"/></svg>'
        )

    assert sanitise_svg(doc(64).encode()).width == 4
    # now `.c { fill: url(#p) }` also applies to the pattern's own <rect>: a cycle
    assert refusal(doc(65)) == "svg_too_many_elements"


def test_inherited_references_cost_one_edge_per_element() -> None:
    # 5,000 gradients referenced from 39 nested groups, inherited by 4,000 rects: checked in
    # linear time (a copy of the inherited set per element took 30 s).
    gradients = "".join(f'<linearGradient id="g{i}"/>' for i in range(5000))
    groups = "".join(
        '<g style="' + ";".join(f"fill:url(#g{d * 125 + k})" for k in range(125)) + '">'
        for d in range(39)
    )
    raw = (
        f'<svg {NS} viewBox="0 0 4 4"><defs>{gradients}</defs>{groups}'
        + '<rect fill="url(#g0)"/>' * 4000
        + "</g>" * 39
        + "</svg>"
    )
    started = time.monotonic()
    assert refusal(raw, SvgLimits(max_bytes=1024 * 1024)) == "svg_too_many_elements"
    assert time.monotonic() - started < 5
