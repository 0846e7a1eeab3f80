"""The one paged log reader: each page follows the last, a short page ends, ``until`` bounds."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from commands.log import pages


class Log:
    """Positions with gaps (rolled-back ids leave them), and a record of every read."""

    def __init__(self, positions: Sequence[int]) -> None:
        self.positions = list(positions)
        self.reads: list[tuple[int, int]] = []

    def read(self, after: int, limit: int) -> list[int]:
        self.reads.append((after, limit))
        return [p for p in self.positions if p > after][:limit]


def _pages(log: Log, **bounds: int) -> list[list[int]]:
    return list(pages(log.read, lambda p: p, **bounds))


def test_pages_follow_each_other_and_a_short_page_ends_the_walk() -> None:
    log = Log([1, 2, 4, 5, 6, 9, 10])
    assert _pages(log, page=3) == [[1, 2, 4], [5, 6, 9], [10]]
    assert log.reads == [(0, 3), (4, 3), (9, 3)]


def test_a_full_last_page_costs_one_empty_read() -> None:
    log = Log([1, 2, 3, 4])
    assert _pages(log, page=2) == [[1, 2], [3, 4]]
    assert log.reads == [(0, 2), (2, 2), (4, 2)]


def test_after_and_until_bound_the_walk_to_a_head_while_the_log_grows() -> None:
    log = Log([1, 2, 3, 4, 5, 6, 7, 8])
    assert _pages(log, after=2, until=6, page=2) == [[3, 4], [5, 6]]
    assert log.reads == [(2, 2), (4, 2)]  # at the bound: no read past it


def test_below_a_head_a_short_page_is_read_on_from() -> None:
    """Walking to a head of 8, a read that stops short of it is followed by another: what
    commits meanwhile is found (a walk to the end stops at the short page)."""
    log = Log([1, 2, 3, 4])
    walked = pages(log.read, lambda p: p, until=8, page=10)
    assert next(walked) == [1, 2, 3, 4]
    log.positions = [1, 2, 3, 4, 5, 6, 8, 9]  # their transactions commit
    assert list(walked) == [[5, 6, 8]]
    assert log.reads == [(0, 10), (4, 10)]
    assert _pages(Log([1, 2, 3, 4]), page=10) == [[1, 2, 3, 4]]


@pytest.mark.parametrize("page", [1, 2, 7, 1000])
def test_every_position_comes_once_in_order_whatever_the_page(page: int) -> None:
    positions = [1, 3, 4, 8, 9, 11, 12, 13]
    walked = _pages(Log(positions), page=page)
    assert [p for chunk in walked for p in chunk] == positions
    assert all(0 < len(chunk) <= page for chunk in walked)
