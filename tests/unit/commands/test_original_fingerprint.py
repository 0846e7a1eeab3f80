"""An original recorded without a render cost estimate is the same request as before the
estimate existed: its idempotency fingerprint did not change (the demo catalog, loaded at every
``make run``, replays its recorded originals by key)."""

from __future__ import annotations

import hashlib
import json
from uuid import UUID

from commands import messages as m
from commands.bus import fingerprint
from tests.support import ctx

ICON = UUID(int=1)
BEFORE = "SvgOriginal(key='originals/a.svg', content_hash='a', size_bytes=10, width=24, height=24)"


def _original(**more: int) -> m.SvgOriginal:
    return m.SvgOriginal(
        key="originals/a.svg", content_hash="a", size_bytes=10, width=24, height=24, **more
    )


def test_an_original_without_an_estimate_fingerprints_as_before_the_estimate_existed() -> None:
    recorded_before = {
        "type": "RecordOriginal",
        "actor": "carol",
        "fields": {"icon_id": ICON, "original": BEFORE},
    }
    digest = hashlib.sha256(json.dumps(recorded_before, sort_keys=True, default=str).encode())
    command = m.RecordOriginal(icon_id=ICON, original=_original())
    assert fingerprint(command, ctx("carol")) == digest.hexdigest()


def test_an_estimate_is_part_of_the_request() -> None:
    plain = m.RecordOriginal(icon_id=ICON, original=_original())
    estimated = m.RecordOriginal(icon_id=ICON, original=_original(render_cost=31_000))
    assert fingerprint(plain, ctx("carol")) != fingerprint(estimated, ctx("carol"))
    assert repr(estimated.original).endswith("height=24, render_cost=31000)")
