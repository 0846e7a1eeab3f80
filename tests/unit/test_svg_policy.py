"""The SVG policy as pure functions: what is refused (with which code), stripped, and stored."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
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
