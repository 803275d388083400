"""The traffic harness against the real local control plane: stand-in pods behind FQDN EndpointSlices,
a real rollout that turns the hierarchical system bad, and a real Prometheus that sees it.

What the migration tests and the demo rely on: a Service's slice lists exactly its current Ready pods
(so a router sends traffic where the Deployment runs), ``kubectl set env`` is all it takes to make
hierarchical fail, Prometheus counts every request the load generator sent and computes the error
rate and p99 from the stand-ins' own metrics, and it keeps its data across a restart.
"""

from __future__ import annotations

import json
import time
import urllib.error

import pytest

from hal9_migration.testing import controlplane
from hal9_migration.testing.loadgen import LoadGenerator
from hal9_migration.testing.prometheus import Prometheus
from tests.integration.conftest import Cluster, wait_until
from tests.support.traffic import (
    Standins,
    answering_endpoint,
    ask,
    slice_addresses,
    wait_scraped,
)

pytestmark = pytest.mark.skipif(
    controlplane.use_existing_cluster(),
    reason="loopback pod IPs and FQDN slices are the local control plane's node agent's",
)


def error_rate(namespace: str, system: str) -> str:
    selector = f'namespace="{namespace}",system="{system}"'
    return (
        f"sum(rate(hal9_errors_total{{{selector}}}[10s])) / sum(rate(hal9_requests_total{{{selector}}}[10s]))"
    )


def p99(namespace: str, system: str) -> str:
    selector = f'namespace="{namespace}",system="{system}"'
    buckets = f"rate(hal9_request_duration_seconds_bucket{{{selector}}}[10s])"
    return f"histogram_quantile(0.99, sum by (le) ({buckets}))"


def pod_ips(cluster: Cluster, namespace: str, app: str) -> list[str]:
    found = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json")
    return sorted(p["status"].get("podIP", "") for p in json.loads(found.stdout)["items"])


def test_standins_run_as_pods_behind_fqdn_slices_and_answer_alike(
    cluster: Cluster, namespace: str, standins: Standins
) -> None:
    for system in ("flat", "hierarchical"):
        app = f"hal9-{system}"
        assert slice_addresses(cluster, namespace, app) == pod_ips(cluster, namespace, app)
        found = json.loads(
            cluster.kubectl("get", "endpointslice", "-n", namespace, f"{app}-fqdn", "-o", "json").stdout
        )
        assert found["addressType"] == "FQDN"
        assert found["metadata"]["labels"]["kubernetes.io/service-name"] == app
        service = json.loads(cluster.kubectl("get", "service", "-n", namespace, app, "-o", "json").stdout)
        assert [p["name"] for p in found["ports"]] == [p["name"] for p in service["spec"]["ports"]]
    flat = ask(standins.urls["flat"] + "/process", "what is the answer")
    hierarchical = ask(standins.urls["hierarchical"] + "/process", "what is the answer")
    assert flat["output"] == hierarchical["output"]
    assert (flat["system"], hierarchical["system"]) == ("flat", "hierarchical")


def test_prometheus_counts_every_request_and_keeps_it_across_a_restart(
    namespace: str, standins: Standins, prometheus: Prometheus
) -> None:
    wait_scraped(prometheus, namespace, pods=2)
    result = LoadGenerator(standins.urls["hierarchical"] + "/process", rate=100, count=300).run()
    assert result.statuses == {200: 300}
    assert result.systems == {"hierarchical": 300}

    total = f'sum(hal9_requests_total{{namespace="{namespace}",system="hierarchical"}})'
    wait_until(lambda: prometheus.value(total) == 300, 30, f"{total} to reach 300")
    [series] = prometheus.query(f'hal9_requests_total{{namespace="{namespace}",system="hierarchical"}}')
    assert series.labels["app"] == "hal9-hierarchical"
    assert series.labels["pod"].startswith("hal9-hierarchical-")
    seen_at = time.time()

    prometheus.stop()
    with pytest.raises(urllib.error.URLError):
        prometheus.value(total)
    url = prometheus.url
    prometheus.start()
    assert prometheus.url == url
    assert prometheus.value(total, at=seen_at) == 300


def test_a_set_env_rollout_makes_hierarchical_fail_and_promql_sees_it(
    cluster: Cluster, namespace: str, standins: Standins, prometheus: Prometheus
) -> None:
    before = standins.urls["hierarchical"]
    cluster.kubectl(
        "set",
        "env",
        "-n",
        namespace,
        "deployment/hal9-hierarchical",
        "HAL9_ERROR_RATE=0.3",
        "HAL9_ADDED_LATENCY_MS=150",
    )
    cluster.kubectl(
        "rollout", "status", "-n", namespace, "deployment/hal9-hierarchical", "--timeout=90s", timeout=100
    )
    after = wait_until(
        lambda: (url := answering_endpoint(cluster, namespace, "hierarchical")) != before and url,
        60,
        "the slice to move to the new hierarchical pod",
    )
    wait_scraped(prometheus, namespace, pods=2)

    hierarchical = LoadGenerator(after + "/process", rate=40, duration=120, concurrency=16).start()
    flat = LoadGenerator(standins.urls["flat"] + "/process", rate=40, duration=120).start()
    try:
        rate = error_rate(namespace, "hierarchical")
        wait_until(
            lambda: (value := prometheus.value(rate)) is not None and 0.25 <= value <= 0.35,
            60,
            f"{rate} near 0.3",
        )
        latency = p99(namespace, "hierarchical")
        assert (prometheus.value(latency) or 0) > 0.1  # over the Canary limit: every answer waits 150 ms
        # Flat's rate is 0/0 (no value) until a scrape has seen its load: wait for one, then it is 0.
        flat_rate = error_rate(namespace, "flat")
        wait_until(lambda: prometheus.value(flat_rate) is not None, 30, f"{flat_rate} measured")
        assert prometheus.value(flat_rate) == 0
    finally:
        answered = hierarchical.stop()
        flat.stop()
    assert abs(answered.statuses[500] - 0.3 * answered.answered) <= 1
    assert answered.systems == {"hierarchical": answered.sent}
