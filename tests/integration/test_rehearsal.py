"""A rehearsal (``spec.rehearsal: true``) on the real control plane, driven by the real operator: it
walks the whole plan to Full while the route object, seen through a real watch and read back at every
step, never changes; no state-migration Job and no shadow proxy are made; history lists every step it
would have taken. Turned off, the same migration then runs for real from the start."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hal9_migration import traffic
from hal9_migration.models import Hal9MigrationSpec
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_engine import apply, condition, events, get, manifest, wait_condition
from tests.support.manifests import workloads
from tests.support.routes import RouteRecorder

REHEARSAL = "Rehearsal (not applied): "
PHASES = {
    "shadow": {"duration": "1s", "mirrorPercent": 100, "mode": "Mirror"},
    "canary": {"steps": [10, 50], "stepDuration": "1s"},
    "rampUp": {"steps": [75], "stepDuration": "1s", "stableFor": "1s"},
}
# Secrets that do not exist: a rehearsal never creates the Job that would read them.
STATE = {
    "image": "hal9-migration-operator:0.1.0",
    "source": {"urlSecretRef": {"name": "flat-db", "key": "url"}},
    "target": {"urlSecretRef": {"name": "hier-db", "key": "url"}},
    "workers": 2,
}
WOULD = [
    ("Started", "Shadow", 0),
    ("Advanced", "Canary", 10),
    ("Advanced", "Canary", 50),
    ("Advanced", "StateMigration", 50),
    ("Advanced", "RampUp", 75),
    ("Advanced", "Full", 100),
]


def rehearsal(**spec: Any) -> dict[str, Any]:
    base = {
        "targetPhase": "Full",
        "trafficSplit": None,
        "phases": PHASES,
        "stateMigration": STATE,
        "rehearsal": True,
    }
    return manifest(**{**base, **spec})


def listed(cluster: Cluster, namespace: str, kind: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", kind, "-n", namespace, "-o", "json").stdout
    return list(json.loads(out)["items"])


def route(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict(
        json.loads(cluster.kubectl("get", "virtualservice", "hal9", "-n", namespace, "-o", "json").stdout)
    )


@pytest.fixture
def world(cluster: Cluster, namespace: str) -> str:
    """The HAL9 workloads and the sample route objects in the test's namespace."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    return namespace


@pytest.fixture
def recorder(cluster: Cluster, world: str) -> Iterator[RouteRecorder]:
    recording = RouteRecorder(
        cluster.api, world, Hal9MigrationSpec.model_validate(rehearsal()["spec"])
    ).start()
    yield recording
    recording.stop()


def test_a_rehearsal_walks_to_full_without_changing_the_route_object(
    cluster: Cluster, world: str, recorder: RouteRecorder, operator: OperatorProcess
) -> None:
    original = route(cluster, world)
    version = original["metadata"]["resourceVersion"]
    apply(cluster, world, rehearsal())

    # Read the route object back at every step the rehearsal is seen at, until it reaches the target.
    steps_seen: set[tuple[str, int]] = set()
    deadline = time.monotonic() + 90
    while True:
        obj = get(cluster, world)
        status = obj.get("status", {})
        if "phase" in status:
            steps_seen.add((status["phase"], status["weight"]))
        assert route(cluster, world) == original, f"the route object changed at {status.get('phase')}"
        if condition(obj, "Ready")[:2] == ("True", "TargetReached"):
            break
        assert time.monotonic() < deadline, f"the rehearsal did not reach Full: {status}"
        time.sleep(0.2)

    assert len(steps_seen) >= 2  # it was seen walking, not only at the end
    status = obj["status"]
    assert (status["phase"], status["weight"], status["position"]["rehearsal"]) == ("Full", 100, True)
    _, _, ready = condition(obj, "Ready")
    assert ready.startswith("Rehearsal reached the target") and "route object was not changed" in ready

    # Every version the watch saw is the one before the rehearsal: not one write, not one annotation.
    time.sleep(2)
    assert recorder.versions, "the watch saw the route object"
    assert {v.obj["metadata"]["resourceVersion"] for v in recorder.versions} == {version}
    assert recorder.weights() == [(0, 0)]
    assert traffic.read_memory(route(cluster, world)) is None

    assert listed(cluster, world, "jobs") == []
    deployments = {d["metadata"]["name"] for d in listed(cluster, world, "deployments")}
    assert deployments == {"hal9-flat", "hal9-hierarchical"}  # no shadow proxy

    history = [h for h in status["history"] if h["reason"] in ("Started", "Advanced")]
    assert [(h["reason"], h["to"], h["weight"]) for h in history] == WOULD
    assert all(h["message"].startswith(REHEARSAL) for h in status["history"])
    leaving_state = next(h for h in history if h.get("from") == "StateMigration")
    assert "(2 workers, image hal9-migration-operator:0.1.0) would run here" in leaving_state["message"]
    said = [e for e in events(cluster, world) if e["reason"] in ("Started", "Advanced")]
    assert said and all(e["message"].startswith(REHEARSAL) for e in said)

    # Turned off, the migration runs for real from the start: the route object's own record (none).
    apply(cluster, world, rehearsal(rehearsal=False, targetPhase="Canary", trafficSplit=10))
    obj = wait_condition(cluster, world, "Ready", "TargetReached", timeout=60)
    assert recorder.weights() == [(0, 0), (0, 100), (10, 0)]
    assert obj["status"]["position"].get("rehearsal", False) is False  # the schema's default
    reasons = [h["reason"] for h in obj["status"]["history"]]
    assert reasons.index("RehearsalEnded") < len(reasons) - 2
    assert listed(cluster, world, "jobs") == []
