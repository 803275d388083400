"""What Argo CD's health check (charts/.../files/argocd-health.lua) says of real Hal9Migrations, run
by the real operator on the real control plane, at each moment a GitOps user cares about; and what
``kubectl hal9 status`` exits with at the same moment (docs/argocd.md pairs the two).

``HAL9_CAPTURE_ARGOCD=1`` (re)writes tests/data/argocd/*.yaml from these runs: the unit test
(tests/unit/test_argocd_health.py) reads them, so its inputs are what the operator really wrote.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

from hal9_migration.testing.controlplane import free_port
from hal9_migration.testing.prometheus import Prometheus
from tests.integration.conftest import Cluster, OperatorProcess, wait_until
from tests.integration.test_engine import NAME, apply, get, manifest
from tests.integration.test_kubectl_plugin import hal9
from tests.support.manifests import load_sample, workloads
from tests.unit.test_argocd_health import FIXTURES, health

CAPTURE = os.environ.get("HAL9_CAPTURE_ARGOCD") == "1"
# Argo CD health -> `kubectl hal9 status` exit code (docs/argocd.md).
EXIT_CODE = {"Healthy": 0, "Progressing": 1, "Suspended": 1, "Degraded": 2}


def capture(name: str, obj: dict[str, Any]) -> None:
    """Write ``obj`` as fixture ``name`` when capturing: volatile metadata out, the test's random
    namespace replaced by the samples' ``hal9``."""
    if not CAPTURE:
        return
    metadata = {
        k: v for k, v in obj["metadata"].items() if k not in ("uid", "resourceVersion", "managedFields")
    }
    namespace = metadata["namespace"]
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    ordered = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": metadata, **rest}
    text = yaml.safe_dump(ordered, sort_keys=False)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / f"{name}.yaml").write_text(re.sub(rf"\b{re.escape(namespace)}\b", "hal9", text))


def judged(cluster: Cluster, namespace: str, name: str = NAME) -> tuple[dict[str, Any], str, str]:
    obj = get(cluster, namespace, name)
    status, message = health(obj)
    return obj, status, message


def status_exit_code(cluster: Cluster, namespace: str, name: str = NAME) -> int:
    return hal9(cluster, "status", name, "-n", namespace).returncode


def test_a_migration_no_operator_has_seen_is_progressing(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    apply(cluster, namespace, manifest(trafficSplit=10))
    obj, status, message = judged(cluster, namespace)
    assert status == "Progressing", message
    assert message == "Waiting for the operator: No operator has observed this migration yet"
    assert status_exit_code(cluster, namespace) == EXIT_CODE[status]
    capture("missing-status", obj)


def test_a_walk_is_progressing_a_pause_suspended_the_target_healthy_a_new_spec_progressing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    phases = {
        "shadow": {"duration": "2s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [1, 5, 10, 25], "stepDuration": "3s"},
    }
    apply(cluster, namespace, manifest(trafficSplit=10, phases=phases))

    # On the way, Argo CD must never call it Healthy or Degraded: a sync wave would move on, or fail.
    def at_canary_one() -> dict[str, Any] | None:
        obj, status, message = judged(cluster, namespace)
        assert status == "Progressing", (status, message)
        reconciling = next(c for c in obj["status"]["conditions"] if c["type"] == "Reconciling")
        waiting = reconciling["reason"] == "WaitingForStep"
        return obj if obj["status"].get("weight") == 1 and waiting else None

    walking = wait_until(at_canary_one, 60, "the walk to wait at Canary 1 %")
    capture("progressing", walking)

    paused = hal9(cluster, "pause", NAME, "-n", namespace)
    assert paused.returncode == 0, paused.stderr
    obj, status, message = judged(cluster, namespace)
    assert status == "Suspended", message
    assert message.startswith("PausedByAnnotation: Paused by the pause annotation (")
    assert status_exit_code(cluster, namespace) == EXIT_CODE[status]
    capture("suspended", obj)

    resumed = hal9(cluster, "resume", NAME, "-n", namespace)
    assert resumed.returncode == 0, resumed.stderr

    def healthy() -> dict[str, Any] | None:
        obj, status, message = judged(cluster, namespace)
        assert status in ("Progressing", "Healthy"), (status, message)
        return obj if status == "Healthy" else None

    obj = wait_until(healthy, 60, "Argo CD health Healthy")
    assert (obj["status"]["phase"], obj["status"]["weight"]) == ("Canary", 10)
    assert health(obj)[1].startswith("TargetReached: Holding at Canary")
    assert status_exit_code(cluster, namespace) == EXIT_CODE["Healthy"]
    capture("healthy", obj)

    # Git moves the target while the operator is down: Ready still says True, for the old generation.
    operator.stop()
    apply(cluster, namespace, manifest(trafficSplit=25, phases=phases))
    obj, status, message = judged(cluster, namespace)
    assert obj["status"]["observedGeneration"] < obj["metadata"]["generation"]
    assert status == "Progressing", message
    assert message.startswith("Waiting for the operator to observe generation ")
    assert status_exit_code(cluster, namespace) == EXIT_CODE[status]
    capture("generation-behind", obj)
    operator.start()  # the fixture deletes the migration through it


def test_a_stalled_migration_is_degraded(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    sample = load_sample("missing-references")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(sample))
    name = sample["metadata"]["name"]
    cluster.kubectl(
        "wait", "--for=condition=Stalled", "--timeout=60s", "h9m", name, "-n", namespace, timeout=70
    )
    obj, status, message = judged(cluster, namespace, name)
    assert status == "Degraded", message
    assert message.startswith("Stalled: ReferenceNotFound: ")
    assert status_exit_code(cluster, namespace, name) == EXIT_CODE[status]
    capture("degraded-stalled", obj)


class ErrorRate:
    """A /metrics endpoint with one gauge standing for hierarchical's error rate, which the test
    raises: the real Prometheus scrapes it and the operator's analysis queries it."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.gauge = prometheus_client.Gauge(
            "argocd_test_hierarchical_error_ratio", "the error rate the test sets", registry=self.registry
        )
        self.port = free_port()
        self.server, self.thread = prometheus_client.start_http_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def error_rate(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[tuple[ErrorRate, Prometheus]]:
    endpoint = ErrorRate()
    server = Prometheus(
        tmp_path / "prometheus",
        Path(cluster.env["KUBECONFIG"]),
        namespaces=[namespace],
        extra_scrape_configs=[
            {"job_name": "argocd-test", "static_configs": [{"targets": [f"127.0.0.1:{endpoint.port}"]}]}
        ],
    )
    server.start()
    try:
        yield endpoint, server
    finally:
        server.stop()
        endpoint.stop()


def test_an_automatic_rollback_is_degraded(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    error_rate: tuple[ErrorRate, Prometheus],
) -> None:
    endpoint, prometheus = error_rate
    endpoint.gauge.set(0)
    wait_until(
        lambda: prometheus.value("argocd_test_hierarchical_error_ratio") == 0, 30, "the gauge to be scraped"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    analysis = {
        "prometheus": {"address": prometheus.url},
        "interval": "1s",
        "failureLimit": 2,
        # HAL9's signals, from the gauge and constants (no traffic flows here): healthy until raised.
        "queries": {
            "errorRate": "max(argocd_test_hierarchical_error_ratio)",
            "p99Ms": "vector(20)",
            "flatP99Ms": "vector(20)",
            "cpuPercent": "vector(10)",
            "memoryPercent": "vector(10)",
        },
    }
    phases = {
        "shadow": {"duration": "2s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [1, 5], "stepDuration": "1s"},
    }
    apply(cluster, namespace, manifest(trafficSplit=5, phases=phases, analysis=analysis))
    wait_until(lambda: judged(cluster, namespace)[1] == "Healthy", 60, "Argo CD health Healthy")

    endpoint.gauge.set(0.5)  # hierarchical fails half its requests: over rollback.maxErrorRate (0.05)

    # From the rollback on, through the walk back to the safe position, Argo CD says Degraded.
    def back_at_safety() -> dict[str, Any] | None:
        obj, status, message = judged(cluster, namespace)
        rollback = obj["status"].get("rollback")
        if rollback is None:  # a trigger firing for fewer than failureLimit runs: Degraded already
            assert status == "Healthy" or message.startswith("Degraded: RollbackTriggerFiring: "), message
        else:
            assert status == "Degraded" and message.startswith("Stalled: RolledBack: "), (status, message)
        safe = rollback and (rollback["toPhase"], rollback["toWeight"])
        return obj if safe and (obj["status"]["phase"], obj["status"]["weight"]) == safe else None

    obj = wait_until(back_at_safety, 60, "the automatic rollback to reach the safe position")
    assert status_exit_code(cluster, namespace) == EXIT_CODE["Degraded"]
    capture("degraded-rolled-back", obj)


def test_the_operator_owns_the_route_objects_weights_under_its_field_manager(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """docs/argocd.md names this manager in ignoreDifferences.managedFieldsManagers."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    apply(cluster, namespace, manifest(trafficSplit=10))
    wait_until(lambda: judged(cluster, namespace)[1] == "Healthy", 60, "Argo CD health Healthy")
    shown = cluster.kubectl(
        "get", "virtualservice", "hal9", "-n", namespace, "-o", "json", "--show-managed-fields"
    )
    route = json.loads(shown.stdout)
    # Istio's CRD leaves spec.http a plain (atomic) list, so the operator's replace of the route object
    # takes the whole list, and the position annotation, from kubectl.
    owners = {
        m["manager"]: m["fieldsV1"] for m in route["metadata"]["managedFields"] if m["operation"] == "Update"
    }
    assert [m for m, fields in owners.items() if "f:http" in fields.get("f:spec", {})] == [
        "hal9-migration-operator"
    ]
    annotations = owners["hal9-migration-operator"]["f:metadata"]["f:annotations"]
    assert "f:migration.hal9.ai/position" in annotations
