"""Reading Prometheus' instant-query answers (their documented JSON shapes): one number, or why not.

The provider is tested against a real Prometheus server in tests/integration/test_prometheus_provider.py;
these are the shapes a real server sends that are awkward to provoke there.
"""

from __future__ import annotations

from typing import Any

import pytest

from hal9_migration.analysis.prometheus import _value


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [1764244800.0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("body", "value", "reason"),
    [
        (vector("0.25"), 0.25, ""),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}, 3.0, ""),
        (vector(), None, "the query returned no series"),
        (vector("NaN"), None, "the query returned NaN (for a ratio: no requests in the window)"),
        (vector("+Inf"), None, "the query returned infinity (for a ratio: a zero denominator)"),
        (vector("1", "2"), None, "the query returned 2 series, not one; aggregate it (sum, max ...)"),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            None,
            "the query returned a matrix, not one number; use an instant vector",
        ),
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            None,
            "the query failed: parse error",
        ),
        ([], None, "the query failed: "),
    ],
)
def test_answers(body: Any, value: float | None, reason: str) -> None:
    sample = _value(body)
    assert (sample.value, sample.reason) == (value, reason)
    assert not sample.unreachable
