"""The operator's /metrics, scraped by a real Prometheus while the real operator walks a migration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hal9_migration.testing.controlplane import free_port
from hal9_migration.testing.prometheus import Prometheus
from tests.integration.conftest import Cluster, OperatorProcess, stop_operator, wait_until
from tests.integration.test_engine import NAME, apply, manifest
from tests.support.manifests import workloads


@pytest.fixture
def scraped(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[tuple[OperatorProcess, Prometheus]]:
    port = free_port()
    operator = OperatorProcess(
        cluster.env, namespace, tmp_path, extra_args=("--metrics", f"127.0.0.1:{port}")
    )
    operator.start()
    server = Prometheus(
        tmp_path / "prometheus",
        Path(cluster.env["KUBECONFIG"]),
        namespaces=[namespace],
        extra_scrape_configs=[
            {"job_name": "hal9-migration-operator", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    )
    server.start()
    try:
        yield operator, server
    finally:
        server.stop()
        stop_operator(cluster, operator)


def test_prometheus_scrapes_the_operators_gauges_and_counters(
    cluster: Cluster, namespace: str, scraped: tuple[OperatorProcess, Prometheus]
) -> None:
    _, prometheus = scraped
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    wait_until(
        lambda: prometheus.value('up{job="hal9-migration-operator"}') == 1, 30, "the operator to be scraped"
    )
    phases = {
        "shadow": {"duration": "3s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [10, 25], "stepDuration": "2s"},
    }
    apply(cluster, namespace, manifest(targetPhase="Canary", trafficSplit=None, phases=phases))
    mine = f'namespace="{namespace}",migration="{NAME}"'

    def value(query: str) -> float | None:
        return prometheus.value(query)

    wait_until(lambda: value(f'hal9_migration_condition{{{mine},type="Ready"}}') == 1, 60, "Ready scraped")
    assert value(f'hal9_migration_traffic_percent{{{mine},system="hierarchical"}}') == 25
    assert value(f'hal9_migration_traffic_percent{{{mine},system="flat"}}') == 75
    assert value(f"hal9_migration_phase{{{mine}}}") == 2
    assert value(f"hal9_migration_progress_percent{{{mine}}}") == 100
    assert value(f'hal9_feature_flag_enabled{{{mine},flag="internal-users"}}') == 1
    # The walk as it was scraped, one scrape a second: the hierarchical share went 0, 10, 25.
    seen = [
        v
        for _, v in prometheus.scrapes(f'hal9_migration_traffic_percent{{{mine},system="hierarchical"}}', 120)
    ]
    assert [v for i, v in enumerate(seen) if i == 0 or seen[i - 1] != v] == [0, 10, 25]
    assert (value(f'sum(hal9_migration_events_total{{{mine},reason="Advanced"}})') or 0) >= 2
    assert (value('sum(hal9_operator_reconciles_total{result="ok"})') or 0) > 0
    assert (value("sum(hal9_operator_reconcile_duration_seconds_count)") or 0) > 0

    cluster.kubectl("delete", "h9m", NAME, "-n", namespace, "--timeout=30s")
    wait_until(
        lambda: value(f"hal9_migration_phase{{{mine}}}") is None, 30, "the deleted migration's gauges to go"
    )
