"""The render cost model: hostile drawings are refused before anything is stored, honest icons
(the fixtures, the demo catalog, the benchmark's generated icons) stay far below the budget,
and the estimate grows with what makes rendering slow (references times geometry, filter extents,
surfaces on a large canvas)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.media import generated_svg
from infra.demo import ICONS, svg_for
from infra.settings import Settings
from pipelines.errors import SvgRefused
from pipelines.svg_policy import DEFAULT_RENDER_BUDGET, SanitisedSvg, SvgLimits, sanitise_svg

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HONEST = sorted((FIXTURES / "honest").glob("*.svg"))
COSTLY = ("heavy_path_use.svg", "filter_chain.svg", "mask_canvas_bomb.svg")
UNBOUNDED = SvgLimits(max_render_cost=10**15)


def cost(raw: bytes) -> int:
    return sanitise_svg(raw, UNBOUNDED).render_cost


def doc(body: str, side: int = 24) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        f'width="{side}" height="{side}">{body}</svg>'
    ).encode()


def test_the_default_budget_is_the_settings_default() -> None:
    default = Settings.__dataclass_fields__["svg_max_render_cost"].default
    assert default == DEFAULT_RENDER_BUDGET == SvgLimits().max_render_cost == 2_000_000


@pytest.mark.parametrize("name", COSTLY)
def test_each_costly_fixture_is_small_valid_and_refused_as_too_costly(name: str) -> None:
    raw = (FIXTURES / "malicious" / name).read_bytes()
    assert len(raw) < 10_000
    accepted = sanitise_svg(raw, UNBOUNDED)  # valid SVG under every other rule
    assert isinstance(accepted, SanitisedSvg)
    assert accepted.render_cost > 5 * DEFAULT_RENDER_BUDGET
    with pytest.raises(SvgRefused) as refused:
        sanitise_svg(raw)
    assert refused.value.code == "svg_too_costly"
    assert refused.value.detail.startswith(
        "the estimated render cost exceeds the budget of 2,000,000 units ("
    )


def test_a_refusal_names_what_the_cost_is_spent_on() -> None:
    details = {}
    for name in COSTLY:
        with pytest.raises(SvgRefused) as refused:
            sanitise_svg((FIXTURES / "malicious" / name).read_bytes())
        details[name] = refused.value.detail.split("(", 1)[1].split(";")[0]
    assert details["heavy_path_use.svg"].startswith("geometry 9")
    assert details["filter_chain.svg"].startswith("filters 100%")
    assert details["mask_canvas_bomb.svg"].startswith("surfaces 100%")


def test_a_lower_budget_refuses_what_the_default_accepts() -> None:
    raw = (FIXTURES / "honest" / "illustration.svg").read_bytes()
    estimate = sanitise_svg(raw).render_cost
    assert sanitise_svg(raw, SvgLimits(max_render_cost=estimate)).render_cost == estimate
    with pytest.raises(SvgRefused, match="budget of"):
        sanitise_svg(raw, SvgLimits(max_render_cost=estimate - 1))


@pytest.mark.parametrize("path", HONEST, ids=[path.name for path in HONEST])
def test_honest_fixture_icons_cost_at_most_a_tenth_of_the_budget(path: Path) -> None:
    assert cost(path.read_bytes()) <= DEFAULT_RENDER_BUDGET // 10


def test_the_demo_catalogs_icons_and_the_benchmarks_cost_at_most_two_percent() -> None:
    icons = [svg_for(data) for family in ICONS.values() for data in family.values()]
    icons += [generated_svg(seed) for seed in range(200)]
    assert len(icons) == 208
    assert max(cost(raw) for raw in icons) <= DEFAULT_RENDER_BUDGET // 50


def test_geometry_is_multiplied_by_the_references_that_repeat_it() -> None:
    path = '<path id="p" d="' + "L1 2 " * 300 + '"/>'
    once = cost(doc(f"<defs>{path}</defs><use href='#p'/>"))
    ten = cost(doc(f"<defs>{path}</defs>" + "<use href='#p'/>" * 10))
    group = f"<defs>{path}<g id='g'>" + "<use href='#p'/>" * 10 + "</g></defs>"
    unused = cost(doc(group))
    hundred = cost(doc(group + "<use href='#g'/>" * 10))
    empty = cost(doc(""))
    assert 9 * (once - empty) < ten - empty < 11 * (once - empty)
    assert 90 * (once - empty) < hundred - empty < 115 * (once - empty)
    assert unused - empty < (once - empty) / 10  # definitions cost only where they are used


def test_a_paths_cost_grows_faster_than_its_length() -> None:
    def path(numbers: int) -> bytes:
        return doc('<path d="M0 0' + " L1 2" * (numbers // 3) + '"/>')

    empty = cost(doc(""))
    short, long = cost(path(600)) - empty, cost(path(6_000)) - empty
    assert long > 15 * short


def test_a_filters_cost_grows_with_its_region_and_its_blur() -> None:
    def blurred(deviation: float, region: str = "") -> int:
        return cost(
            doc(
                f'<defs><filter id="f" {region}><feGaussianBlur stdDeviation="{deviation}"/>'
                '</filter></defs><rect width="10" height="10" filter="url(#f)"/>'
            )
        )

    plain = cost(doc('<rect width="10" height="10"/>'))
    assert blurred(1) < blurred(4) < blurred(16)
    assert blurred(1) < DEFAULT_RENDER_BUDGET // 20
    wide = blurred(1, 'x="-4" y="-4" width="9" height="9"')
    assert wide - plain > 30 * (blurred(1) - plain)


def test_surfaces_cost_more_on_a_larger_canvas() -> None:
    def masked(side: int) -> int:
        return cost(
            doc(
                f'<defs><mask id="m" maskUnits="userSpaceOnUse" width="{side}" height="{side}">'
                f'<rect width="{side}" height="{side}" fill="#fff"/></mask></defs>'
                + '<rect width="1" height="1" mask="url(#m)"/>'
                * 20,
                side,
            )
        )

    assert masked(4096) - cost(doc("", 4096)) > 25 * (masked(24) - cost(doc("")))
