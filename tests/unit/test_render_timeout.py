"""`TimedRenderer`: rendering in a child process, killed past its time limit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines.render import Output, render_missing
from pipelines.render_timeout import RenderTimedOut, TimedRenderer

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "malicious"
SIMPLE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4" width="4" height="4">'
    b'<rect width="4" height="2" fill="#c00"/></svg>\n'
)
WANTED = (Output("png", 16), Output("webp", 16))


def test_a_render_past_the_limit_is_stopped_and_the_next_render_works() -> None:
    renderer = TimedRenderer(timeout=2)
    try:
        assert renderer(SIMPLE, WANTED) == render_missing(SIMPLE, WANTED)
        # The policy refuses this file (8**6 shapes); unchecked, it renders for many seconds.
        bomb = (CORPUS / "pattern_bomb.svg").read_bytes()
        started = time.monotonic()
        with pytest.raises(RenderTimedOut, match="longer than 2 s"):
            renderer(bomb, [Output("png", 64)])
        assert 2 <= time.monotonic() - started < 10
        assert renderer(SIMPLE, WANTED) == render_missing(SIMPLE, WANTED)
    finally:
        renderer.close()
