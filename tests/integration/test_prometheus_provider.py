"""The Prometheus provider against a real Prometheus scraping the HAL9 stand-ins: a value, or a
readable reason it has none (no series, NaN, a rejected query, several series, a server that is down).
"""

from __future__ import annotations

import json

from hal9_migration.analysis.prometheus import PrometheusProvider
from hal9_migration.testing.prometheus import Prometheus
from tests.integration.conftest import wait_until
from tests.support.traffic import (  # noqa: F401 - fixtures
    Standins,
    http,
    prometheus_fixture,
    standins_fixture,
    wait_scraped,
)


def test_values_and_the_reasons_for_none(standins: Standins, prometheus: Prometheus) -> None:
    ns = standins.namespace
    wait_scraped(prometheus, ns, pods=2)
    provider = PrometheusProvider(prometheus.url, timeout=5)
    for i in range(40):
        assert (
            http(standins.urls["hierarchical"] + "/process", json.dumps({"input": f"r{i}"}).encode())[0]
            == 200
        )
    requests = f'sum(hal9_requests_total{{namespace="{ns}",system="hierarchical"}})'
    wait_until(lambda: provider.query(requests).value == 40, 30, "Prometheus to scrape 40 requests")

    errors = (
        f'sum(rate(hal9_errors_total{{namespace="{ns}",system="hierarchical"}}[5s])) / '
        f'sum(rate(hal9_requests_total{{namespace="{ns}",system="hierarchical"}}[5s]))'
    )
    # The requests stopped: once the 5 s window holds none, the ratio is 0/0.
    nan = wait_until(lambda: (s := provider.query(errors)).value is None and s, 30, "the window to empty")
    assert nan.reason == "the query returned NaN (for a ratio: no requests in the window)"

    absent = provider.query(f'sum(hal9_requests_total{{namespace="{ns}",system="nowhere"}})')
    assert (absent.value, absent.reason) == (None, "the query returned no series")
    several = provider.query(f'hal9_requests_total{{namespace="{ns}"}}')
    assert several.reason == "the query returned 2 series, not one; aggregate it (sum, max ...)"
    bad = provider.query("sum(rate(hal9_requests_total[5s])")
    assert bad.value is None and not bad.unreachable
    assert bad.reason.startswith(f"Prometheus at {prometheus.url} rejected the query: bad_data: ")


def test_a_stopped_server_is_unreachable_and_answers_again_when_back(
    standins: Standins, prometheus: Prometheus
) -> None:
    ns = standins.namespace
    wait_scraped(prometheus, ns, pods=2)
    provider = PrometheusProvider(prometheus.url, timeout=2)
    up = f'count(up{{namespace="{ns}"}} == 1)'
    assert provider.query(up).value == 2
    prometheus.stop()
    down = provider.query(up)
    assert down.value is None and down.unreachable
    assert down.reason.startswith(f"Prometheus at {prometheus.url} is unreachable: ")
    prometheus.start()
    wait_until(lambda: provider.query(up).value == 2, 60, "Prometheus to answer again")
