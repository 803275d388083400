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


def test_credentials_in_the_address_never_reach_a_message() -> None:
    from hal9_migration.analysis.prometheus import PrometheusProvider

    provider = PrometheusProvider("http://admin:s3cret@127.0.0.1:1/prom", timeout=1)
    assert provider.name == "Prometheus at http://127.0.0.1:1/prom"
    down = provider.query("up")  # nothing listens on port 1
    assert down.unreachable and "s3cret" not in down.reason and "admin" not in down.reason


def test_a_bearer_token_or_basic_auth_goes_in_the_authorization_header() -> None:
    from hal9_migration.analysis import Credentials
    from hal9_migration.analysis.prometheus import PrometheusProvider

    token = PrometheusProvider("http://p:9090", 1, Credentials(bearer_token="abc"))
    assert token._headers() == {"Authorization": "Bearer abc"}
    basic = PrometheusProvider("http://p:9090", 1, Credentials(username="u", password="p:w"))
    assert basic._headers() == {"Authorization": "Basic dTpwOnc="}  # base64 of "u:p:w"
    assert PrometheusProvider("http://p:9090", 1)._headers() == {}


def test_an_unreadable_secret_makes_every_query_inconclusive_without_asking() -> None:
    from hal9_migration.analysis import Credentials
    from hal9_migration.analysis.prometheus import PrometheusProvider

    provider = PrometheusProvider("http://127.0.0.1:1", 1, Credentials(problem="Secret ns/prom not found"))
    sample = provider.query("up")
    assert (
        sample.unreachable and sample.reason == "Prometheus at http://127.0.0.1:1: Secret ns/prom not found"
    )
