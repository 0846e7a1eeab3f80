"""`audit replay` and `audit diff` on a scratch event store with the real Redis and OpenSearch:
a replay bounded at a midpoint equals a snapshot taken at that midpoint (by positions and by
time), and a replay to the end differs from it in exactly what was written afterwards."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commands import messages as m
from infra.audit.replay import Projection, drop_all
from infra.audit.scratch import scratch_database
from infra.bootstrap import Container, bootstrap
from infra.cli import main
from infra.cli.project_cmd import SPECS
from infra.settings import Settings
from tests.integration.test_audit_history import write_story
from tests.support import ctx, log_heads


@pytest.fixture
def store(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Container, str]]:
    tag = uuid.uuid4().hex[:8]
    # OpenSearch calls get the health-check timeout (2 s by default); index creation on this
    # shared, loaded machine can take longer.
    monkeypatch.setenv("ICONMARKET_HEALTH_TIMEOUT_S", "30")
    with scratch_database(settings) as scratch_settings:
        monkeypatch.setenv("ICONMARKET_POSTGRES_DB", scratch_settings.postgres_db)
        container = bootstrap(dataclasses.replace(scratch_settings, health_timeout_s=30))
        try:
            yield container, tag
        finally:
            projections = [Projection(s.name, s.contexts) for s in SPECS.values()]
            for side in ("mid", "bypos", "bytime", "end"):
                drop_all(container, projections, f"t{tag}-{side}")
            container.close()


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _report(out: Path, left: str, right: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((out / f"{left}-vs-{right}.json").read_text())
    return loaded


def test_a_replay_to_the_midpoint_equals_the_midpoint_snapshot(
    store: tuple[Container, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    container, tag = store
    story = write_story(container, tag)
    mid = log_heads(container.applications)
    midpoint_time = dt.datetime.now(dt.UTC)
    code, out = _cli(capsys, "audit", "replay", "--until", "head", "--into", f"t{tag}-mid")
    assert code == 0, out
    assert f"carts: replayed 12 events up to catalog:{mid['catalog']},commerce:12 into " in out
    assert f"'audit:t{tag}-mid:carts:'" in out
    assert f"'catalog-audit-t{tag}-mid'" in out

    who = ctx(f"late-{tag}", "customer")
    cart = container.bus.execute(m.OpenCart(currency="USD"), who).aggregate_id
    container.bus.execute(
        m.AddToCart(cart_id=cart, product_kind="icon", product_id=story.icon_ids[1]), who
    )
    owner = ctx(f"owner-{tag}", "contributor")
    container.bus.execute(
        m.UpdateIconDetails(icon_id=story.icon_ids[0], name="arrow renamed"), owner
    )
    assert log_heads(container.applications)["commerce"] == 14

    bound = f"catalog:{mid['catalog']},commerce:{mid['commerce']}"
    assert _cli(capsys, "audit", "replay", "--until", bound, "--into", f"t{tag}-bypos")[0] == 0
    at = midpoint_time.isoformat()
    assert _cli(capsys, "audit", "replay", "--until", at, "--into", f"t{tag}-bytime")[0] == 0
    assert _cli(capsys, "audit", "replay", "--until", "head", "--into", f"t{tag}-end")[0] == 0

    for later in ("bypos", "bytime"):
        code, out = _cli(
            capsys, "audit", "diff", f"t{tag}-mid", f"t{tag}-{later}", "--out", str(tmp_path)
        )
        assert code == 0, out
        report = _report(tmp_path, f"t{tag}-mid", f"t{tag}-{later}")
        assert report["differences"] == 0
        counts = {
            name: (p["left_count"], p["right_count"]) for name, p in report["projections"].items()
        }
        # the checked-out cart; the order and the customer's order list; family, set, 2 icons
        assert counts == {
            "carts": (1, 1),
            "customers": (2, 2),
            "catalog": (4, 4),
            "popularity": (0, 0),
        }
        assert (tmp_path / f"t{tag}-mid-vs-t{tag}-{later}.md").read_text().count(
            "No differences."
        ) == 1

    code, out = _cli(capsys, "audit", "diff", f"t{tag}-mid", f"t{tag}-end", "--out", str(tmp_path))
    assert code == 1
    report = _report(tmp_path, f"t{tag}-mid", f"t{tag}-end")["projections"]
    assert report["carts"]["only_right"] == [f"cart:{cart}", f"customer-carts:late-{tag}"]
    assert (report["carts"]["only_left"], report["carts"]["changed"]) == ([], {})
    assert report["customers"]["differences"] == 0
    assert report["catalog"]["only_left"] == report["catalog"]["only_right"] == []
    [(document, fields)] = report["catalog"]["changed"].items()
    assert document == f"icon:{story.icon_ids[0]}"
    assert fields["name"] == ["arrow 0", "arrow renamed"]
    markdown = (tmp_path / f"t{tag}-mid-vs-t{tag}-end.md").read_text()
    assert "3 documents differ." in markdown
    assert "`name`: `'arrow 0'` → `'arrow renamed'`" in markdown


def test_replay_refuses_a_used_name_and_an_unbounded_log(
    store: tuple[Container, str], capsys: pytest.CaptureFixture[str]
) -> None:
    container, tag = store
    write_story(container, tag)
    name = f"t{tag}-mid"
    assert _cli(capsys, "audit", "replay", "--until", "head", "--into", name)[0] == 0
    with pytest.raises(SystemExit, match="in use already"):
        main(["audit", "replay", "--until", "head", "--into", name, "--projection", "carts"])
    with pytest.raises(SystemExit, match=r"no position for the log\(s\) \['catalog'\]"):
        main(["audit", "replay", "--until", "commerce:3", "--into", f"t{tag}-end"])
    with pytest.raises(SystemExit, match="lowercase"):
        main(["audit", "replay", "--until", "head", "--into", "Bad Name"])
