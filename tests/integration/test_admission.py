"""The real API server refuses bad Hal9Migrations at admission, with a message a person understands."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from hal9_migration.models import Hal9MigrationSpec
from tests.integration.conftest import Cluster, OperatorProcess
from tests.support.manifests import InvalidCase, invalid_cases, load_sample, valid_cases

CASES = invalid_cases()


def test_there_are_at_least_twenty_invalid_manifests() -> None:
    assert len(CASES) >= 20


def test_the_sample_is_accepted_and_defaulted(cluster: Cluster, namespace: str) -> None:
    sample = yaml.safe_dump(load_sample("flat-to-hierarchical"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample)
    stored = json.loads(
        cluster.kubectl("get", "h9m", "flat-to-hierarchical", "-n", namespace, "-o", "json").stdout
    )
    spec = stored["spec"]
    # Defaults from the schema are applied by the API server, nested ones included.
    assert spec["phases"]["full"] == {"flatStandbyReplicas": 1, "minHealthScore": 0.8}
    assert spec["phases"]["shadow"]["minOutputParity"] == 0.99
    assert spec["rollback"]["maxErrorRate"] == 0.05
    assert spec["analysis"]["inconclusive"] == "Pause"
    assert spec["paused"] is False


@pytest.mark.parametrize(("name", "manifest"), valid_cases(), ids=[name for name, _ in valid_cases()])
def test_valid_manifest_is_accepted_and_defaulted_as_the_models_default(
    cluster: Cluster, namespace: str, name: str, manifest: dict[str, Any]
) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    stored = json.loads(cluster.kubectl("get", "h9m", name, "-n", namespace, "-o", "json").stdout)["spec"]
    assert stored != manifest["spec"]  # the API server filled defaults in
    assert Hal9MigrationSpec.model_validate(stored) == Hal9MigrationSpec.model_validate(manifest["spec"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invalid_manifest_is_rejected_with_a_specific_message(
    cluster: Cluster, namespace: str, case: InvalidCase
) -> None:
    result = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", input=yaml.safe_dump(case.manifest), check=False
    )
    assert result.returncode != 0, f"{case.name} was accepted"
    assert case.expect in result.stderr, f"{case.name}: expected {case.expect!r} in:\n{result.stderr}"
    # Rejected at admission: nothing was stored, so the operator can never see it.
    listed = cluster.kubectl("get", "h9m", "-n", namespace, "-o", "name").stdout
    assert listed.strip() == ""


def test_workload_references_are_immutable(cluster: Cluster, namespace: str) -> None:
    manifest = load_sample("flat-to-hierarchical")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    manifest["spec"]["hierarchical"]["service"] = "hal9-other"
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0
    assert "hierarchical is immutable: create a new Hal9Migration instead" in result.stderr


def test_rejected_manifests_never_reach_a_running_operator(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    operator.wait_for_log("Initial authentication has finished")
    for case in CASES:
        result = cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(case.manifest), check=False
        )
        assert result.returncode != 0, case.name
    # A valid object afterwards proves the operator was watching all along.
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(load_sample("flat-to-hierarchical"))
    )
    operator.wait_for_log(f"reconciled {namespace}/flat-to-hierarchical generation 1")
    assert "invalid-" not in operator.logs()
    seen = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert {e["involvedObject"]["name"] for e in seen} == {"flat-to-hierarchical"}
