"""The KRaft cluster id given to ``StorageTool format`` on a fresh stack."""

import base64
import uuid
from collections.abc import Iterator

from infra.stack.kafka import new_cluster_id

# 0xF8 = 0b111110..: the first base64 digit is 62, which is "-" in the URL-safe alphabet.
DASH_FIRST = uuid.UUID(bytes=b"\xf8" + b"\x01" * 15)
PLAIN = uuid.UUID(bytes=b"\x10" + b"\x02" * 15)


def _sequence(*values: uuid.UUID) -> Iterator[uuid.UUID]:
    yield from values


def test_a_uuid_whose_id_would_start_with_a_dash_is_redrawn() -> None:
    assert base64.urlsafe_b64encode(DASH_FIRST.bytes).decode().startswith("-")
    draws = _sequence(DASH_FIRST, DASH_FIRST, PLAIN)

    cluster_id = new_cluster_id(lambda: next(draws))

    assert cluster_id == base64.urlsafe_b64encode(PLAIN.bytes).decode().rstrip("=")
    assert len(cluster_id) == 22


def test_random_ids_never_start_with_a_dash() -> None:
    ids = [new_cluster_id() for _ in range(2_000)]

    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert len(set(ids)) == 2_000
