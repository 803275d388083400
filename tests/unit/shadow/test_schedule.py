"""--shadow-percent: the copied share is exact over any run of requests, not a random walk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration.shadow.schedule import CopySchedule


def copied(percent: float, requests: int) -> list[bool]:
    schedule = CopySchedule(percent)
    return [schedule.next_copied() for _ in range(requests)]


def test_all_and_none() -> None:
    assert copied(100, 50) == [True] * 50
    assert copied(0, 50) == [False] * 50


def test_a_share_is_spread_evenly() -> None:
    assert copied(25, 8) == [False, False, False, True, False, False, False, True]
    assert copied(50, 4) == [False, True, False, True]


@given(st.floats(0, 100), st.integers(1, 2000))
def test_the_copied_count_is_the_share_to_within_one(percent: float, requests: int) -> None:
    assert abs(sum(copied(percent, requests)) - requests * percent / 100) <= 1


@pytest.mark.parametrize("percent", [-1, 100.5])
def test_out_of_range_is_refused(percent: float) -> None:
    with pytest.raises(ValueError, match="percent"):
        CopySchedule(percent)
