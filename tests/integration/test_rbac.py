"""The chart's ClusterRole is enough for the operator, and nothing more is assumed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Cluster, OperatorProcess, stop_operator, wait_until
from tests.integration.test_operator import apply_sample, condition, events, get, wait_for
from tests.integration.test_state_migration import put_secret
from tests.support.manifests import ROOT, workloads

RULES = ROOT / "charts" / "hal9-migration-operator" / "files" / "rbac-rules.yaml"
ROLE = "hal9-migration-operator-under-test"


@pytest.fixture(params=["namespaced", "clusterwide"])
def restricted_operator(
    cluster: Cluster, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The operator as the user "restricted", watching one namespace or (the chart's default) all."""
    if cluster.plane is None:
        pytest.skip("needs the local control plane's static 'restricted' user")
    kubeconfig = cluster.plane.write_kubeconfig("restricted", tmp_path / "restricted.kubeconfig")
    env = {**cluster.env, "KUBECONFIG": str(kubeconfig)}
    process = OperatorProcess(env, namespace, tmp_path, namespaced=request.param == "namespaced")
    yield process
    stop_operator(cluster, process)
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", ROLE, "--ignore-not-found")


def grant_chart_rules(cluster: Cluster) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": ROLE},
        "rules": yaml.safe_load(RULES.read_text()),
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
        "subjects": [{"kind": "User", "name": "restricted", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))


def test_the_operator_works_with_exactly_the_charts_rules(
    cluster: Cluster, namespace: str, restricted_operator: OperatorProcess, tmp_path: Path
) -> None:
    can_i = [
        "auth",
        "can-i",
        "update",
        "hal9migrations.migration.hal9.ai",
        "--subresource=status",
        "-n",
        namespace,
        "--as=restricted",
    ]
    assert cluster.kubectl(*can_i, check=False).stdout.strip() == "no"
    grant_chart_rules(cluster)
    assert cluster.kubectl(*can_i, check=False).stdout.strip() == "yes"

    restricted_operator.start()
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, "Stalled")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    wait_for(cluster, namespace, "Ready")
    assert condition(get(cluster, namespace), "Ready")["reason"] == "TargetReached"
    assert {"ReferenceNotFound", "TargetReached"} <= {e["reason"] for e in events(cluster, namespace)}
    route = json.loads(cluster.kubectl("get", "virtualservice", "hal9", "-n", namespace, "-o", "json").stdout)
    primary = next(r for r in route["spec"]["http"] if r["name"] == "primary")
    assert [d["weight"] for d in primary["route"]] == [90, 10]
    # Phase 3 under the same rights: Secrets read, the Job created and read, its failed pod listed
    # for the worker's last error (the source database does not exist, so the worker fails).
    put_secret(cluster, namespace, "hal9-flat-db", {"url": f"sqlite:///{tmp_path / 'missing.db'}"})
    put_secret(cluster, namespace, "hal9-hier-db", {"url": f"sqlite:///{tmp_path / 'hier.db'}"})
    apply_sample(
        cluster,
        namespace,
        targetPhase="RampUp",
        trafficSplit=None,
        phases={"shadow": {"duration": "1s"}, "canary": {"steps": [5], "stepDuration": "1s"}},
        stateMigration={
            "image": "hal9-migration-operator:dev",
            "source": {"urlSecretRef": {"name": "hal9-flat-db", "key": "url"}},
            "target": {"urlSecretRef": {"name": "hal9-hier-db", "key": "url"}},
            "workers": 1,
            "backoffLimitPerIndex": 0,
        },
    )
    stalled = wait_until(
        lambda: (
            (o := get(cluster, namespace))
            and condition(o, "Stalled").get("reason") == "StateMigrationFailed"
            and o
        ),
        120,
        "StateMigrationFailed",
    )
    assert "missing.db does not exist" in condition(stalled, "Stalled")["message"]
    logs = restricted_operator.logs()
    assert "Forbidden" not in logs, logs
    assert json.loads(cluster.kubectl("get", "h9m", "-n", namespace, "-o", "json").stdout)["items"]
