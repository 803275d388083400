"""The health score of DESIGN §2, term by term, and what an unmeasured input does to it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration import health


@pytest.mark.parametrize(
    ("error_rate", "cpu", "memory", "parity", "expected"),
    [
        (0.0, 50.0, 50.0, 0.95, 1.0),  # nothing to subtract
        (0.05, None, None, None, 0.7),  # the error term is capped at 0.3 ...
        (0.5, None, None, None, 0.7),  # ... however bad it gets
        (0.01, None, None, None, 0.94),  # 1 - 0.01/0.05*0.3
        (0.0, 75.0, None, None, 0.8),  # cpu: (75-50)/50 = 0.5, clamped to 0.2
        (0.0, 60.0, 55.0, None, 0.7),  # cpu 0.2, memory 0.1
        (0.0, None, None, 0.90, 0.8421),  # parity: (0.95-0.90)/0.95*3 = 0.1579
        (0.0, None, None, 0.5, 0.7),  # parity capped at 0.3
        (0.05, 100.0, 100.0, 0.0, 0.0),  # every term at its cap: 1 - 0.3 - 0.2 - 0.2 - 0.3
    ],
)
def test_the_formula(
    error_rate: float, cpu: float | None, memory: float | None, parity: float | None, expected: float
) -> None:
    assert health.score(error_rate, cpu, memory, parity).score == pytest.approx(expected, abs=1e-4)


def test_no_error_rate_no_score() -> None:
    result = health.score(None, 10.0, 10.0, 1.0)
    assert result.score is None and "error rate was not measured" in result.reason


def test_unmeasured_inputs_are_named_not_silently_counted_as_healthy() -> None:
    result = health.score(0.0, None, 40.0, None)
    assert result.score == 1.0
    assert result.reason == "not measured, so not counted: cpu, output parity"
    assert health.score(0.0, 40.0, 40.0, 0.99).reason == ""


@given(
    st.floats(0, 1),
    st.one_of(st.none(), st.floats(0, 400)),
    st.one_of(st.none(), st.floats(0, 400)),
    st.one_of(st.none(), st.floats(0, 1)),
)
def test_the_score_stays_in_0_1_and_more_errors_never_raise_it(
    error_rate: float, cpu: float | None, memory: float | None, parity: float | None
) -> None:
    score = health.score(error_rate, cpu, memory, parity).score
    assert score is not None and 0.0 <= score <= 1.0
    worse = health.score(min(1.0, error_rate * 2 + 0.001), cpu, memory, parity).score
    assert worse is not None and worse <= score
