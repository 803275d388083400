"""The walking-skeleton operator against the real API server: conditions, Events, restarts."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from hal9_migration.models import Hal9MigrationStatus
from tests.integration.conftest import Cluster, OperatorProcess, stop_operator, wait_until
from tests.support.manifests import load_sample, workloads

NAME = "flat-to-hierarchical"


def get(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", "h9m", NAME, "-n", namespace, "-o", "json").stdout))


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_]
    return found[0] if found else {}


def apply_sample(cluster: Cluster, namespace: str, **spec: Any) -> None:
    manifest = load_sample(NAME)
    manifest["spec"].update(spec)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


def events(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={NAME}", "-o", "json"
    ).stdout
    return list(json.loads(out)["items"])


def wait_for(cluster: Cluster, namespace: str, type_: str, status: str = "True") -> None:
    cluster.kubectl(
        "wait", f"--for=condition={type_}={status}", "--timeout=30s", "h9m", NAME, "-n", namespace, timeout=40
    )


def test_missing_references_stall_with_a_reason_and_an_event(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, "Stalled")
    obj = get(cluster, namespace)
    stalled, ready = condition(obj, "Stalled"), condition(obj, "Ready")
    assert stalled["reason"] == "ReferenceNotFound"
    for missing in (f"Service {namespace}/hal9-flat", f"Deployment {namespace}/hal9-hierarchical"):
        assert missing in stalled["message"]
    assert (ready["status"], condition(obj, "Reconciling")["status"]) == ("False", "False")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert {c["type"] for c in obj["status"]["conditions"]} == {
        "Ready",
        "Reconciling",
        "Stalled",
        "Degraded",
        "Paused",
    }
    for c in obj["status"]["conditions"]:
        assert set(c) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    warning = wait_until(
        lambda: [e for e in events(cluster, namespace) if e["reason"] == "ReferenceNotFound"], 10, "an Event"
    )
    assert warning[0]["type"] == "Warning"
    assert warning[0]["source"]["component"] == "hal9-migration-operator"
    assert f"Service {namespace}/hal9-flat" in warning[0]["message"]


def test_creating_the_workloads_makes_it_ready(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, "Stalled")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    wait_for(cluster, namespace, "Ready")
    obj = get(cluster, namespace)
    assert condition(obj, "Stalled")["status"] == "False"
    assert condition(obj, "Ready")["reason"] == "TargetReached"
    assert any(e["reason"] == "TargetReached" and e["type"] == "Normal" for e in events(cluster, namespace))


def test_status_holds_no_kopf_bookkeeping(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, "Ready")
    obj = get(cluster, namespace)
    # Only fields of the status model: kopf's progress and handler results stay out.
    fields = {f.alias or name for name, f in Hal9MigrationStatus.model_fields.items()}
    assert set(obj["status"]) <= fields
    assert "kopf" not in obj["status"]
    # Nothing of kopf's under the controls' prefix, where it could clash with migration.hal9.ai/promote.
    assert not [k for k in obj["metadata"].get("annotations", {}) if k.startswith("migration.hal9.ai/")]
    assert obj["metadata"]["finalizers"] == ["migration.hal9.ai/finalizer"]


def test_deleting_a_migration_completes(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, "Stalled")
    cluster.kubectl("delete", "h9m", NAME, "-n", namespace, "--timeout=20s")
    assert cluster.kubectl("get", "h9m", "-n", namespace, "-o", "name").stdout.strip() == ""


@pytest.mark.parametrize("state", ["Ready", "Stalled"])
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["deleted", "killed"])
def test_restarting_the_operator_leaves_status_unchanged(
    cluster: Cluster, namespace: str, operator: OperatorProcess, how: signal.Signals, state: str
) -> None:
    if state == "Ready":
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, state)
    before = get(cluster, namespace)
    operator.stop(how)
    operator.start()
    # The new process has looked at the object (resume handler and at least one recheck) and found
    # nothing to change.
    operator.wait_for_log("(no change)")
    wait_until(lambda: operator.logs().count("(no change)") >= 2, 15, "a second pass")
    after = get(cluster, namespace)
    assert after["status"] == before["status"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_a_spec_change_made_while_the_operator_is_down_is_seen_after_restart(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, "Ready")
    operator.stop()
    apply_sample(cluster, namespace, paused=True)
    assert get(cluster, namespace)["status"]["observedGeneration"] == 1  # nobody has looked yet
    operator.start()
    wait_for(cluster, namespace, "Paused")
    obj = get(cluster, namespace)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2
    assert condition(obj, "Ready")["status"] == "True"


def test_a_spec_change_is_observed(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, "Ready")
    ready_since = condition(get(cluster, namespace), "Ready")["lastTransitionTime"]
    apply_sample(cluster, namespace, paused=True)
    wait_for(cluster, namespace, "Paused")
    obj = get(cluster, namespace)
    assert obj["metadata"]["generation"] == 2
    assert obj["status"]["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in obj["status"]["conditions"])
    # Ready did not flip, so its transition time stays.
    assert condition(obj, "Ready")["lastTransitionTime"] == ready_since
    assert any(e["reason"] == "Paused" for e in events(cluster, namespace))


def test_printer_columns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    apply_sample(cluster, namespace)
    wait_for(cluster, namespace, "Ready")
    header, row = cluster.kubectl("get", "h9m", "-n", namespace).stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "WEIGHT", "STEP", "READY", "STATE", "%", "HEALTH", "AGE"]
    assert row.split()[0] == NAME and "True" in row.split()
    wide_header, wide_row = cluster.kubectl("get", "h9m", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide_header.split()[-1] == "MESSAGE"
    assert row.split()[1:4] == ["Canary", "10", "3"]  # PHASE, WEIGHT, STEP
    assert "Holding at Canary step 3 (10%) as declared" in wide_row


def test_without_namespace_flags_it_watches_every_namespace(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    if cluster.plane is None:
        pytest.skip("a cluster-wide test operator would put its finalizer on every Hal9Migration there")
    clusterwide = OperatorProcess(cluster.env, namespace, tmp_path, namespaced=False)
    clusterwide.start()
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
        apply_sample(cluster, namespace)
        wait_for(cluster, namespace, "Ready")
    finally:
        stop_operator(cluster, clusterwide)
