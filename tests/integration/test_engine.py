"""The migration engine on the real control plane: real route objects under the real mesh CRDs, the
operator as a real process, every version of the route object seen through a real watch."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from hal9_migration import plan
from hal9_migration.models import Hal9MigrationSpec
from tests.integration.conftest import Cluster, OperatorProcess, wait_until
from tests.support import kstatus
from tests.support.manifests import load_sample, workloads
from tests.support.routes import RouteRecorder, router_config, sample_route

NAME = "flat-to-hierarchical"
FAST = {
    "shadow": {"duration": "2s", "mirrorPercent": 100, "mode": "Mirror"},
    "canary": {"steps": [1, 5, 10, 25], "stepDuration": "1s"},
    "rampUp": {"steps": [50, 75, 90], "stepDuration": "1s"},
}
MOVES = {"Started", "Advanced", "Promoted", "RolledBack", "RollingBack", "PartiallyRolledBack", "Aborted"}


def manifest(router: str = "istio", name: str = NAME, **spec: Any) -> dict[str, Any]:
    obj = load_sample(NAME)
    obj["metadata"]["name"] = name
    obj["spec"].pop("analysis", None)
    obj["spec"].update({"phases": FAST, "trafficRouter": router_config(router), "progressDeadline": "5m"})
    if router == "smi":
        obj["spec"]["phases"] = {**FAST, "shadow": {"duration": "2s", "mirrorPercent": 0, "mode": "Mirror"}}
        obj["spec"]["targeting"] = []
    obj["spec"].update(spec)
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    return obj


def apply(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj))


def get(cluster: Cluster, namespace: str, name: str = NAME, kind: str = "h9m") -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout))


def condition(obj: dict[str, Any], type_: str) -> tuple[str, str, str]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c["status"], c["reason"], c["message"]
    return "", "", ""


def wait_condition(
    cluster: Cluster,
    namespace: str,
    type_: str,
    reason: str | None = None,
    name: str = NAME,
    timeout: float = 60,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(cluster, namespace, name)
        status, why, _ = condition(obj, type_)
        return obj if status == "True" and reason in (None, why) else None

    return dict(wait_until(check, timeout, f"{type_}={reason or 'True'} on {name}"))


def moves(obj: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (h["reason"], h.get("weight", -1)) for h in obj["status"].get("history", []) if h["reason"] in MOVES
    ]


def events(cluster: Cluster, namespace: str, name: str = NAME) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ).stdout
    return list(json.loads(out)["items"])


@pytest.fixture
def world(cluster: Cluster, namespace: str) -> str:
    """The HAL9 workloads and the three sample route objects in the test's namespace."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    return namespace


@pytest.fixture
def recorder(cluster: Cluster, world: str, request: pytest.FixtureRequest) -> Iterator[RouteRecorder]:
    router = getattr(request, "param", "istio")
    spec = Hal9MigrationSpec.model_validate(manifest(router)["spec"])
    recording = RouteRecorder(cluster.api, world, spec).start()
    yield recording
    recording.stop()


@pytest.mark.parametrize("recorder", ["istio", "gatewayAPI", "smi"], indirect=True)
def test_walks_shadow_then_canary_and_holds_at_the_traffic_split(
    cluster: Cluster, world: str, recorder: RouteRecorder, operator: OperatorProcess
) -> None:
    router_name = {"VirtualService": "istio", "HTTPRoute": "gatewayAPI", "TrafficSplit": "smi"}[
        recorder.router.kind
    ]
    apply(cluster, world, manifest(router_name, trafficSplit=10))
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        obj = get(cluster, world)
        seen.add(kstatus.compute(obj)[0])
        if condition(obj, "Ready")[:2] == ("True", "TargetReached"):
            break
        time.sleep(0.3)
    assert kstatus.compute(obj)[0] == "Current"
    assert "InProgress" in seen and "Failed" not in seen
    shadow_mirror = 0 if router_name == "smi" else 100
    expected = [(0, 0), (0, shadow_mirror), (1, 0), (5, 0), (10, 0)]
    assert recorder.weights() == [w for i, w in enumerate(expected) if i == 0 or w != expected[i - 1]]
    final = recorder.versions[-1].routing
    assert final is not None
    if router_name != "smi":
        assert final.targeting == ("hal9-targeting-internal-users",)
        shadow = next(v for v in recorder.versions if v.routing and v.routing.mirror == 100)
        assert shadow.routing and shadow.routing.targeting == ("hal9-targeting-internal-users",)
    status = obj["status"]
    assert (status["phase"], status["step"], status["weight"], status["mirrorPercent"]) == (
        "Canary",
        3,
        10,
        0,
    )
    assert moves(obj) == [("Started", 0), ("Advanced", 1), ("Advanced", 5), ("Advanced", 10)]
    reasons = [e["reason"] for e in events(cluster, world)]
    assert reasons.count("Advanced") == 3 and "Started" in reasons and "TargetReached" in reasons
    # The step is held: nothing moves any more.
    count = len(recorder.versions)
    time.sleep(3)
    assert len(recorder.versions) == count


@pytest.mark.parametrize(
    ("strategy", "weights"),
    [
        ({"strategy": "Immediate"}, [(25, 0), (0, 100)]),
        (
            {"strategy": "Gradual", "gradual": {"stepPercent": 10, "stepInterval": "1s"}},
            [(25, 0), (15, 0), (5, 0), (0, 100)],
        ),
        ({"strategy": "Partial", "partial": {"components": ["routing"]}}, [(25, 0), (0, 100)]),
        ({"strategy": "Partial", "partial": {"components": ["targeting"]}}, [(25, 0)]),
    ],
    ids=["immediate", "gradual", "partial-routing", "partial-targeting"],
)
def test_a_reverted_spec_walks_back_with_the_strategy(
    cluster: Cluster,
    world: str,
    recorder: RouteRecorder,
    operator: OperatorProcess,
    strategy: dict[str, Any],
    weights: list[tuple[int, int]],
) -> None:
    apply(cluster, world, manifest(trafficSplit=25, rollback=strategy))
    wait_condition(cluster, world, "Ready", "TargetReached")
    recorded = len(recorder.weights())
    # `git revert` of "go to Canary, add the internal-users rule": Shadow again, no targeting.
    apply(cluster, world, manifest(targetPhase="Shadow", trafficSplit=None, targeting=[], rollback=strategy))
    partial = strategy["strategy"] == "Partial"
    obj = wait_condition(cluster, world, "Ready", "PartiallyRolledBack" if partial else "RolledBack")
    assert recorder.weights()[recorded - 1 :] == weights
    final = recorder.versions[-1].routing
    assert final is not None
    held_targeting = strategy.get("partial", {}).get("components") == ["routing"]
    assert final.targeting == (("hal9-targeting-internal-users",) if held_targeting else ())
    if strategy["strategy"] == "Gradual":
        times = [v.at for v in recorder.versions if v.routing and v.routing.weight in (15, 5)]
        assert times[-1] - times[0] >= 0.9  # one stepInterval between the two steps down
    assert kstatus.compute(obj)[0] == "Current"


def test_sigkilled_ten_times_it_never_skips_or_repeats_a_step(
    cluster: Cluster, world: str, recorder: RouteRecorder, operator: OperatorProcess
) -> None:
    steps = list(range(1, 21))
    phases = {
        **FAST,
        "shadow": {"duration": "1s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": steps, "stepDuration": "1s"},
    }
    apply(cluster, world, manifest(phases=phases, trafficSplit=20))
    rng = random.Random(9)
    kills = 0
    while kills < 10:
        time.sleep(rng.uniform(0.2, 2.0))
        operator.stop(signal.SIGKILL)
        kills += 1
        operator.start()
    obj = wait_condition(cluster, world, "Ready", "TargetReached", timeout=120)
    assert recorder.weights() == [(0, 0), (0, 100), *[(w, 0) for w in steps]]
    assert moves(obj) == [("Started", 0), *[("Advanced", w) for w in steps]]
    assert obj["status"]["weight"] == 20


def test_user_owned_parts_survive_a_whole_migration_and_concurrent_edits(
    cluster: Cluster, world: str, recorder: RouteRecorder, operator: OperatorProcess
) -> None:
    stop = threading.Event()
    labelled: list[str] = []

    def other_writer() -> None:  # another controller or a person, editing the same object meanwhile
        while not stop.is_set():
            key = f"edit-{len(labelled)}"
            cluster.kubectl("label", "virtualservice", "hal9", "-n", world, f"{key}=done")
            labelled.append(key)
            time.sleep(0.15)

    writer = threading.Thread(target=other_writer, daemon=True)
    writer.start()
    try:
        apply(cluster, world, manifest(trafficSplit=25))
        wait_condition(cluster, world, "Ready", "TargetReached")
        apply(cluster, world, manifest(targetPhase="Shadow", trafficSplit=None, targeting=[]))
        wait_condition(cluster, world, "Ready", "RolledBack")
    finally:
        stop.set()
        writer.join(10)
    final = get(cluster, world, "hal9", "virtualservice")
    assert len(labelled) > 20
    assert all(final["metadata"]["labels"].get(key) == "done" for key in labelled)
    original = sample_route("istio")
    for obj in (final, original):
        obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k in ("labels", "annotations", "name")}
        obj["metadata"]["labels"] = {
            k: v for k, v in obj["metadata"]["labels"].items() if not k.startswith("edit-")
        }
        for key in ("migration.hal9.ai/position", "kubectl.kubernetes.io/last-applied-configuration"):
            obj["metadata"].get("annotations", {}).pop(key, None)
        primary = next(r for r in obj["spec"]["http"] if r["name"] == "primary")
        for key in ("mirror", "mirrorPercentage"):
            primary.pop(key, None)
        for destination in primary["route"]:
            destination.pop("weight", None)
    assert final == original


# --- bad references --------------------------------------------------------------------------------


def stalled_with(cluster: Cluster, namespace: str, reason: str, name: str = NAME) -> dict[str, Any]:
    obj = wait_condition(cluster, namespace, "Stalled", reason, name)
    assert kstatus.compute(obj)[0] == "Failed"
    wait_until(
        lambda: [
            e for e in events(cluster, namespace, name) if e["reason"] == reason and e["type"] == "Warning"
        ],
        10,
        f"a {reason} Event",
    )
    return obj


def test_a_missing_route_object_stalls_and_the_migration_starts_when_it_appears(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads(routes=False))
    apply(cluster, namespace, manifest(trafficSplit=10))
    obj = stalled_with(cluster, namespace, "RouteNotFound")
    assert f"VirtualService {namespace}/hal9 not found" in condition(obj, "Stalled")[2]
    apply(cluster, namespace, sample_route("istio"))
    wait_condition(cluster, namespace, "Ready", "TargetReached")


def test_a_route_object_deleted_mid_migration_resumes_where_it_was(
    cluster: Cluster, world: str, operator: OperatorProcess
) -> None:
    apply(
        cluster,
        world,
        manifest(trafficSplit=25, phases={**FAST, "canary": {"steps": [1, 5, 10, 25], "stepDuration": "4s"}}),
    )
    wait_until(lambda: get(cluster, world)["status"].get("weight") == 5, 30, "Canary step 2")
    cluster.kubectl("delete", "virtualservice", "hal9", "-n", world)
    stalled_with(cluster, world, "RouteNotFound")
    at = get(cluster, world)["status"]["weight"]
    apply(cluster, world, sample_route("istio"))  # back from Git: weights 100/0, no operator record
    wait_until(
        lambda: (
            plan.load_status(get(cluster, world)["status"]).weight == at
            and condition(get(cluster, world), "Stalled")[0] == "False"
        ),
        30,
        "the migration to resume",
    )
    restored = get(cluster, world, "hal9", "virtualservice")
    primary = next(r for r in restored["spec"]["http"] if r["name"] == "primary")
    assert [d["weight"] for d in primary["route"]] == [100 - at, at]  # resumed, not restarted at Shadow
    obj = wait_condition(cluster, world, "Ready", "TargetReached")
    assert [w for _, w in moves(obj)] == [0, 1, 5, 10, 25][: len(moves(obj))]


def test_a_named_route_that_does_not_exist_stalls_naming_it(
    cluster: Cluster, world: str, operator: OperatorProcess
) -> None:
    apply(cluster, world, manifest(trafficRouter={"istio": {"virtualService": "hal9", "routes": ["nope"]}}))
    obj = stalled_with(cluster, world, "RouteNotFound")
    assert "nope" in condition(obj, "Stalled")[2]
    apply(cluster, world, manifest(trafficSplit=1))
    wait_condition(cluster, world, "Ready", "TargetReached")


def test_a_route_without_both_destinations_is_misconfigured_until_fixed(
    cluster: Cluster, world: str, operator: OperatorProcess
) -> None:
    broken = sample_route("istio")
    primary = next(r for r in broken["spec"]["http"] if r["name"] == "primary")
    primary["route"] = primary["route"][:1]
    apply(cluster, world, broken)
    apply(cluster, world, manifest(trafficSplit=1))
    obj = stalled_with(cluster, world, "RouteMisconfigured")
    assert "hal9-hierarchical" in condition(obj, "Stalled")[2]
    apply(cluster, world, sample_route("istio"))
    wait_condition(cluster, world, "Ready", "TargetReached")


def test_a_second_migration_on_the_same_route_object_is_refused_naming_the_owner(
    cluster: Cluster, world: str, operator: OperatorProcess
) -> None:
    apply(cluster, world, manifest(trafficSplit=1))
    wait_condition(cluster, world, "Ready", "TargetReached")
    apply(cluster, world, manifest(name="second", trafficSplit=5))
    obj = stalled_with(cluster, world, "RouteInUse", "second")
    assert f"{world}/{NAME}" in condition(obj, "Stalled")[2]
    cluster.kubectl("delete", "h9m", NAME, "-n", world, "--timeout=30s")
    wait_condition(cluster, world, "Ready", "TargetReached", "second")


def test_smi_asked_to_mirror_or_target_is_unsupported_until_the_spec_stops_asking(
    cluster: Cluster, world: str, operator: OperatorProcess
) -> None:
    bad = manifest("smi", trafficSplit=1)
    bad["spec"]["phases"] = FAST  # mirrorPercent 100
    apply(cluster, world, bad)
    obj = stalled_with(cluster, world, "UnsupportedByRouter")
    assert "mirrorPercent" in condition(obj, "Stalled")[2]
    apply(cluster, world, manifest("smi", trafficSplit=1))
    wait_condition(cluster, world, "Ready", "TargetReached")


# --- controls ----------------------------------------------------------------------------------------


def annotate(cluster: Cluster, namespace: str, verb: str, actor: str) -> None:
    cluster.kubectl(
        "annotate", "h9m", NAME, "-n", namespace, f"migration.hal9.ai/{verb}={actor}", "--overwrite"
    )


def wait_consumed(cluster: Cluster, namespace: str, verb: str) -> dict[str, Any]:
    def gone() -> dict[str, Any] | None:
        obj = get(cluster, namespace)
        return None if f"migration.hal9.ai/{verb}" in obj["metadata"].get("annotations", {}) else obj

    return dict(wait_until(gone, 15, f"the {verb} annotation to be acted on"))


def test_control_annotations_act_once_and_never_touch_the_spec(
    cluster: Cluster, world: str, recorder: RouteRecorder, operator: OperatorProcess
) -> None:
    slow = {
        **FAST,
        "shadow": {"duration": "1h", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [1, 5, 10], "stepDuration": "2s"},
    }
    apply(cluster, world, manifest(trafficSplit=10, phases=slow))
    wait_until(lambda: get(cluster, world)["status"].get("phase") == "Shadow", 30, "Shadow")
    spec, generation = get(cluster, world)["spec"], get(cluster, world)["metadata"]["generation"]

    annotate(cluster, world, "promote", "alice")  # skips Shadow's hour, once
    obj = wait_consumed(cluster, world, "promote")
    wait_until(lambda: get(cluster, world)["status"].get("weight") == 1, 15, "promoted to Canary step 1")

    annotate(cluster, world, "pause", "bob")
    wait_consumed(cluster, world, "pause")
    obj = wait_condition(cluster, world, "Paused", "PausedByAnnotation")
    time.sleep(4)  # two step durations: a paused migration does not move
    assert get(cluster, world)["status"]["weight"] == 1
    # Not at its target, so not Current; not moving either (Reconciling False says paused, not stuck).
    assert kstatus.compute(obj)[0] == "InProgress"
    assert condition(obj, "Reconciling")[:2] == ("False", "Paused")

    annotate(cluster, world, "resume", "bob")
    wait_consumed(cluster, world, "resume")
    wait_condition(cluster, world, "Ready", "TargetReached")

    annotate(cluster, world, "abort", "carol")
    wait_consumed(cluster, world, "abort")
    obj = wait_condition(cluster, world, "Stalled", "Aborted")
    assert kstatus.compute(obj)[0] == "Failed"
    assert recorder.weights()[-1] == (0, 0)

    annotate(cluster, world, "retry", "carol")
    wait_consumed(cluster, world, "retry")
    obj = wait_until(
        lambda: get(cluster, world) if get(cluster, world)["status"].get("phase") == "Shadow" else None,
        15,
        "a new start",
    )

    final = get(cluster, world)
    assert final["spec"] == spec and final["metadata"]["generation"] == generation
    # Fields a pass drops really go (status is replaced, not merged): no pause, no halt left over.
    assert "pausedBy" not in final["status"].get("controls", {}) and "halt" not in final["status"]
    actors = {(h["reason"], h["actor"]) for h in final["status"]["history"]}
    assert {
        ("Promoted", "alice"),
        ("Paused", "bob"),
        ("Resumed", "bob"),
        ("Aborted", "carol"),
        ("Retried", "carol"),
    } <= actors
    assert recorder.weights() == [(0, 0), (0, 100), (1, 0), (5, 0), (10, 0), (0, 0), (0, 100)]


def test_the_shadow_proxy_is_never_made_over_someone_elses_object_and_follows_the_spec(
    cluster: Cluster, world: str, operator: OperatorProcess
) -> None:
    proxy = "shadow-" + NAME
    stranger = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": proxy, "labels": {"owner": "someone-else"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "theirs"}},
            "template": {
                "metadata": {"labels": {"app": "theirs"}},
                "spec": {"containers": [{"name": "c", "image": "theirs:1", "command": ["sleep", "1"]}]},
            },
        },
    }
    apply(cluster, world, stranger)
    before = get(cluster, world, proxy, "deployment")["metadata"]["resourceVersion"]
    shadow = {"duration": "1h", "mode": "Proxy", "proxy": {"ignoreFields": ["ts"]}}
    operator.start()
    apply(cluster, world, manifest(phases={**FAST, "shadow": shadow}))
    message = wait_until(
        lambda: (
            (get(cluster, world).get("status", {}).get("shadow") or {}).get("message", "")
            if "is not this migration's" in str(get(cluster, world).get("status", {}).get("shadow"))
            else None
        ),
        60,
        "status.shadow to name the stranger",
    )
    assert f"Deployment {world}/{proxy} exists and is not this migration's" in message
    time.sleep(3)
    assert get(cluster, world, proxy, "deployment")["metadata"]["resourceVersion"] == before
    route = get(cluster, world, "hal9", "virtualservice")
    assert proxy not in json.dumps(route["spec"])  # traffic never went to a proxy that is not ours

    # Theirs gone: ours is made, owned by the migration, and the VirtualService sends flat's share to it.
    cluster.kubectl("delete", "deployment", proxy, "-n", world, "--wait=true")
    wait_until(
        lambda: (get(cluster, world).get("status", {}).get("shadow") or {}).get("routed"),
        90,
        "flat's share routed through the operator's proxy",
    )
    primary = next(
        r for r in get(cluster, world, "hal9", "virtualservice")["spec"]["http"] if r.get("name") == "primary"
    )
    assert primary["route"][0]["destination"]["host"].split(".")[0] == proxy
    ours = get(cluster, world, proxy, "deployment")
    assert ours["metadata"]["ownerReferences"][0]["kind"] == "Hal9Migration"
    assert "--ignore-field" in ours["spec"]["template"]["spec"]["containers"][0]["args"]

    # A spec change reaches the proxy (replaced, not left stale).
    apply(
        cluster,
        world,
        manifest(phases={**FAST, "shadow": {**shadow, "proxy": {"ignoreFields": ["ts", "id"]}}}),
    )

    def args() -> list[str]:
        return list(
            get(cluster, world, proxy, "deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        )

    wait_until(lambda: "id" in args(), 30, "the proxy's Deployment to carry the new ignoreFields")
