"""What Flux, ``helm --wait`` and ``kubectl wait`` conclude about a Hal9Migration, asked of the real
kstatus library (sigs.k8s.io/cli-utils, built by hack/build-kstatus.sh) on objects from the real API
server."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from hal9_migration.crd import AWAITING_OPERATOR_STATUS
from tests.integration.conftest import Cluster, OperatorProcess
from tests.support import kstatus
from tests.support.manifests import load_sample, workloads

NAME = "flat-to-hierarchical"


def create_sample(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(load_sample(NAME)))


def get(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", "h9m", NAME, "-n", namespace, "-o", "json").stdout))


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def wait_for(cluster: Cluster, namespace: str, type_: str) -> None:
    cluster.kubectl(
        "wait", f"--for=condition={type_}=True", "--timeout=60s", "h9m", NAME, "-n", namespace, timeout=70
    )


def test_a_migration_no_operator_has_seen_is_in_progress(cluster: Cluster, namespace: str) -> None:
    create_sample(cluster, namespace)
    obj = get(cluster, namespace)
    # The API server fills the schema's default status in when it reads the object; kstatus would
    # call an object without status Current.
    assert obj["status"] == AWAITING_OPERATOR_STATUS
    assert kstatus.compute(obj) == (
        "InProgress",
        f"Hal9Migration generation is {obj['metadata']['generation']}, but latest observed generation is -1",
    )
    # Without the generation check kstatus still reads InProgress, from the Reconciling condition.
    del obj["status"]["observedGeneration"]
    assert kstatus.compute(obj) == ("InProgress", "No operator has observed this migration yet")


def test_a_stalled_migration_has_failed(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_sample(cluster, namespace)  # its Services and Deployments do not exist
    wait_for(cluster, namespace, "Stalled")
    obj = get(cluster, namespace)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert "AwaitingOperator" not in {c["reason"] for c in obj["status"]["conditions"]}
    assert kstatus.compute(obj) == ("Failed", condition(obj, "Stalled")["message"])


def test_a_migration_is_in_progress_until_it_is_ready_and_then_current(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    create_sample(cluster, namespace)
    # On the way to its target (Shadow, then Canary steps) kstatus must never call it done or failed:
    # that is when Flux and `helm --wait` would move on.
    verdicts = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        obj = get(cluster, namespace)
        verdict = kstatus.compute(obj)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in obj["status"]["conditions"]):
            break
        verdicts.append(verdict[0])
        time.sleep(0.2)
    assert verdicts, "the migration was Ready at its first read"
    assert set(verdicts) == {"InProgress"}, verdicts
    wait_for(cluster, namespace, "Ready")  # what `kubectl wait` sees
    obj = get(cluster, namespace)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert (condition(obj, "Reconciling")["status"], condition(obj, "Stalled")["status"]) == (
        "False",
        "False",
    )
    assert kstatus.compute(obj) == ("Current", "Resource is Ready")
