"""Analysis in the phase machine: gates on metrics, rollback triggers, and no fight with GitOps (pure).

The metrics come from the NoopProvider (the analysis package's test double), keyed by the metric
names in HAL9's default queries; the World makes each run the plan asks for, as the edge does.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hal9_migration import analysis
from hal9_migration.controls import Verb, annotation
from tests.support.machine import World
from tests.support.manifests import load_sample

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
ERRORS = "hal9_errors_total"
P99 = 'bucket{namespace="hal9",system="hierarchical"}'
FLAT_P99 = 'bucket{namespace="hal9",system="flat"}'
CPU = "container_cpu_usage_seconds_total"
MEMORY = "container_memory_working_set_bytes"


def healthy(**changes: float | None) -> dict[str, float | None]:
    values: dict[str, float | None] = {ERRORS: 0.0002, P99: 40.0, FLAT_P99: 38.0, CPU: 30.0, MEMORY: 40.0}
    values.update({k: v for k, v in changes.items()})
    return values


def spec(**changes: Any) -> dict[str, Any]:
    base = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    base["phases"] = {
        "shadow": {"duration": "4s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [1, 5, 10, 25], "stepDuration": "4s"},
        "rampUp": {"steps": [50, 75, 90], "stepDuration": "4s", "stableFor": "6s"},
    }
    base["analysis"] = {
        "prometheus": {"address": "http://prometheus:9090"},
        "interval": "2s",
        "failureLimit": 2,
    }
    base["rollback"] = {"strategy": "Immediate"}
    base["progressDeadline"] = "10m"
    base.pop("trafficSplit")
    base["targetPhase"] = "Canary"
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def world_with(values: dict[str, float | None], **changes: Any) -> World:
    return World(spec(**changes), T0, metrics=analysis.NoopProvider(values))


def at_weight(world: World, weight: int, limit: float = 120) -> None:
    for _ in range(int(limit * 2)):
        if world.route.weight == weight:
            return
        world.step(0.5)
    raise AssertionError(f"never reached weight {weight}: writes {world.writes}")


STATE = {
    "image": "hal9-migration-operator:0.1.0",
    "source": {"urlSecretRef": {"name": "a", "key": "url"}},
    "target": {"urlSecretRef": {"name": "b", "key": "url"}},
}


def promoted_to(world: World, weight: int) -> None:
    """Walk up to ``weight`` without a state Job: a promote annotation carries it past phase 3."""
    for _ in range(600):
        if world.route.weight == weight:
            return
        if world.status.get("phase") == "StateMigration":
            world.annotations[annotation(Verb.PROMOTE)] = f"p{len(world.decisions)}"
        world.step(0.5)
    raise AssertionError(f"never reached weight {weight}: writes {world.writes}")


def condition(world: World, kind: str) -> tuple[str, str, str]:
    found = next(c for c in world.status["conditions"] if c["type"] == kind)
    return found["status"], found["reason"], found.get("message", "")


def reasons(world: World) -> list[str]:
    return [h["reason"] for h in world.status.get("history", [])]


def test_healthy_metrics_walk_to_the_target_with_every_run_in_status() -> None:
    world = world_with(healthy())
    world.run(60, tick=0.5)
    assert world.writes == [(0, 100), (1, 0), (5, 0), (10, 0), (25, 0)]
    assert world.condition("Ready") == ("True", "TargetReached")
    last = world.status["analysis"]
    assert last["verdict"] == "Pass"
    assert {c["name"]: c["verdict"] for c in last["checks"]} == {"error-rate": "Pass", "p99-ms": "Pass"}
    error = next(c for c in last["checks"] if c["name"] == "error-rate")
    assert error["value"] == 0.0002 and 'system="hierarchical"' in error["query"] and "[2s]" in error["query"]
    assert error["reason"] == "0.0002 < 0.001 (phases.canary.maxErrorRate)"
    assert world.status["health"]["score"] == 0.9988  # 1 - 0.0002/0.05*0.3
    assert world.condition("Degraded") == ("False", "AnalysisPassing")
    # Every step was left on a run made at that step: no advance on the step before's numbers.
    advanced = [h for h in world.status["history"] if h["reason"] == "Advanced"]
    assert len(advanced) == 4 and all("gate analysis passed" in h["message"] for h in advanced)


def test_a_failing_gate_holds_and_says_why_without_rolling_back() -> None:
    world = world_with(healthy())
    at_weight(world, 1)
    world.metrics.values[ERRORS] = 0.01  # above the canary gate, below the trigger
    world.run(60, tick=0.5)
    assert world.writes == [(0, 100), (1, 0)]
    assert world.condition("Reconciling") == ("True", "WaitingForGate")
    gate = world.status["gate"]
    assert (
        gate["verdict"] == "Fail"
        and "error-rate 0.01 >= 0.001 (phases.canary.maxErrorRate)" in gate["reason"]
    )
    assert world.condition("Degraded")[:2] == ("True", "AnalysisFailing")
    assert "AutomaticRollback" not in reasons(world)


def test_errors_at_a_canary_step_roll_back_after_failure_limit_runs() -> None:
    world = world_with(healthy())
    at_weight(world, 10)
    world.metrics.values[ERRORS] = 0.2
    runs_before = len(world.runs)
    at_weight(world, 0, limit=10)
    assert world.writes[-2:] == [(10, 0), (0, 100)]  # Immediate: back to Shadow's mirror in one write
    assert len(world.runs) - runs_before == 2  # failureLimit runs in a row
    assert world.condition("Stalled")[:2] == ("True", "RolledBack")
    assert world.condition("Degraded")[:2] == ("True", "RolledBack")
    rollback = world.status["rollback"]
    assert rollback["reason"] == "error-rate,health-score"
    assert rollback["toPhase"] == "Shadow" and rollback["toWeight"] == 0
    assert rollback["failedGeneration"] == 1 and len(rollback["failedSpecHash"]) == 16
    assert "error-rate 0.2 > 0.05 (rollback.maxErrorRate)" in rollback["message"]
    assert "AutomaticRollback" in reasons(world)
    events = [e for d in world.decisions for e in d.events if e.reason == "AutomaticRollback"]
    assert len(events) == 1 and events[0].type == "Warning"
    world.metrics.values[ERRORS] = 0.0002  # healthy again: it still holds until the spec changes or a retry
    world.run(60, tick=0.5)
    assert world.writes[-1] == (0, 100)
    assert world.condition("Stalled")[:2] == ("True", "RolledBack")


def test_gradual_automatic_rollback_steps_down_and_turns_immediate_when_health_keeps_falling() -> None:
    gradual = {"strategy": "Gradual", "gradual": {"stepPercent": 10, "stepInterval": "3s"}}
    world = world_with(healthy(), rollback=gradual)
    at_weight(world, 25)
    world.metrics.values[ERRORS] = 0.1
    at_weight(world, 0, limit=60)
    assert world.writes[-4:] == [(25, 0), (15, 0), (5, 0), (0, 100)]
    assert "RollbackEscalated" not in reasons(world)

    world = world_with(healthy(), rollback=gradual)
    at_weight(world, 25)
    world.metrics.values[ERRORS] = 0.06  # health 0.64 when the rollback starts
    at_weight(world, 15, limit=20)
    world.metrics.values[ERRORS] = 0.06
    world.metrics.values[CPU] = 95.0  # health falls to 0.44 during the walk
    at_weight(world, 0, limit=20)
    assert world.writes[-3:] == [(25, 0), (15, 0), (0, 100)]
    assert "RollbackEscalated" in reasons(world)
    assert world.status["rollback"]["escalated"] is True


def test_partial_automatic_rollback_reverts_only_the_named_components() -> None:
    world = world_with(healthy(), rollback={"strategy": "Partial", "partial": {"components": ["routing"]}})
    at_weight(world, 10)
    assert world.route.targeting == ("internal-users",)
    world.metrics.values[ERRORS] = 0.2
    at_weight(world, 0, limit=10)
    assert world.writes[-1] == (0, 100)
    assert world.route.targeting == ("internal-users",)  # targeting is not a named component

    world = world_with(healthy(), rollback={"strategy": "Partial", "partial": {"components": ["targeting"]}})
    at_weight(world, 10)
    world.metrics.values[ERRORS] = 0.2
    world.run(20, tick=0.5)
    assert world.writes[-1] == (10, 0)  # the weights stay: routing is not a named component
    assert world.condition("Stalled")[:2] == ("True", "RolledBack")


def test_an_unreachable_backend_holds_as_inconclusive_and_never_advances() -> None:
    world = world_with(healthy())
    at_weight(world, 5)
    world.metrics.reachable = False
    asked, runs = len(world.metrics.queries), len(world.runs)
    world.run(60, tick=0.5)
    assert world.route.weight == 5
    assert world.status["analysis"]["verdict"] == "Inconclusive"
    assert "unreachable" in world.status["gate"]["reason"]
    assert world.status["analysis"]["consecutiveFailures"] == 0  # Pause: neither a pass nor a failure
    assert "AutomaticRollback" not in reasons(world)
    # An unreachable backend is asked once per run, not once per query.
    assert len(world.metrics.queries) - asked == len(world.runs) - runs == 30
    world.metrics.reachable = True
    at_weight(world, 25, limit=60)


def test_inconclusive_fail_counts_as_a_failure_and_rolls_back() -> None:
    world = world_with(
        healthy(),
        analysis={
            "prometheus": {"address": "http://prometheus:9090"},
            "interval": "2s",
            "failureLimit": 2,
            "inconclusive": "Fail",
        },
    )
    at_weight(world, 5)
    world.metrics.values[ERRORS] = None  # no series
    at_weight(world, 0, limit=20)
    assert world.condition("Stalled")[:2] == ("True", "RolledBack")


def test_the_failed_spec_reapplied_never_moves_a_weight_and_a_new_spec_or_retry_does() -> None:
    world = world_with(healthy())
    at_weight(world, 10)
    world.metrics.values[ERRORS] = 0.2
    at_weight(world, 0, limit=10)
    world.metrics.values[ERRORS] = 0.0002
    writes = list(world.writes)
    failed = copy.deepcopy(world.spec)
    for _ in range(30):  # Argo CD self-heal: the same spec, applied again and again
        world.spec = copy.deepcopy(failed)
        world.step(2)
    world.edit()  # someone touched it and Git put it back: a new generation, the same spec
    world.run(20, tick=0.5)
    assert world.writes == writes
    stalled = condition(world, "Stalled")
    assert (
        stalled[:2] == ("True", "RolledBack") and "held off until the spec changes or a retry" in stalled[2]
    )
    assert "FailedSpecReapplied" in reasons(world)

    world.edit(trafficSplit=5)  # a new spec: it moves again
    at_weight(world, 5, limit=60)
    world.edit(trafficSplit=None)  # the failed spec is declared again: held at the same safe position
    world.step()
    assert world.route.weight == 0 and world.condition("Stalled")[:2] == ("True", "RolledBack")
    world.run(20, tick=0.5)
    assert world.route.weight == 0

    world.annotations[annotation(Verb.RETRY)] = "alice"
    at_weight(world, 25, limit=60)
    assert world.status["rollback"]["retriedBy"] == "alice"


def test_without_automatic_rollback_triggers_only_mark_degraded() -> None:
    world = world_with(healthy(), rollback={"strategy": "Immediate", "automatic": False})
    at_weight(world, 5)
    world.metrics.values[ERRORS] = 0.2
    world.run(20, tick=0.5)
    assert world.route.weight == 5
    assert world.condition("Degraded")[:2] == ("True", "RollbackTriggerFiring")


def test_shadow_holds_a_failing_system_and_never_rolls_back_as_no_user_traffic_rides_on_it() -> None:
    world = world_with(healthy(**{ERRORS: 0.3}))
    world.run(20, tick=0.5)
    assert world.writes == [(0, 100)]
    assert "error-rate 0.3 >= 0.001" in world.status["gate"]["reason"]
    assert world.status["analysis"]["consecutiveFailures"] >= 2
    assert world.status["analysis"]["notes"] == [analysis.verdicts.PARITY_NOTE]
    assert world.condition("Degraded")[:2] == ("True", "RollbackTriggerFiring")


def test_ramp_up_wants_every_check_passing_for_stable_for() -> None:
    queue = {"name": "queue-depth", "query": "max(hal9_queue_depth)", "max": 10}
    checks = {
        "prometheus": {"address": "http://p:9090"},
        "interval": "2s",
        "failureLimit": 2,
        "metrics": [queue],
    }
    world = world_with(
        healthy(hal9_queue_depth=3), targetPhase="RampUp", stateMigration=STATE, analysis=checks
    )
    promoted_to(world, 50)
    world.metrics.values["hal9_queue_depth"] = 12  # a user's check fails: the step holds
    world.run(10, tick=0.5)
    assert world.route.weight == 50
    assert "queue-depth 12 > 10 (analysis.metrics[queue-depth])" in world.status["gate"]["reason"]
    world.metrics.values["hal9_queue_depth"] = 3
    world.step(2)
    passing_since = world.status["analysis"]["passingSince"]
    assert (
        world.status["gate"]["verdict"] == "Inconclusive" and "stableFor 6s" in world.status["gate"]["reason"]
    )
    at_weight(world, 75, limit=30)
    moved = datetime.fromisoformat(world.status["history"][-1]["time"].replace("Z", "+00:00"))
    assert (moved - datetime.fromisoformat(passing_since.replace("Z", "+00:00"))).total_seconds() >= 6


def test_a_verdict_change_is_one_event_not_one_per_run() -> None:
    world = world_with(healthy())
    at_weight(world, 5)
    world.metrics.values[ERRORS] = 0.004  # fails the gate, fires no trigger
    world.run(10, tick=0.5)
    world.metrics.values[ERRORS] = 0.0002
    world.run(10, tick=0.5)
    turned = [e for d in world.decisions for e in d.events if e.reason.startswith("Analysis")]
    assert [(e.reason, e.type) for e in turned] == [("AnalysisFail", "Warning"), ("AnalysisPass", "Normal")]
    assert (
        "error-rate = 0.004: Fail (0.004 >= 0.001 (phases.canary.maxErrorRate)), was Pass"
        in turned[0].message
    )


def test_one_rollback_at_a_time_while_a_gradual_walk_is_under_way() -> None:
    gradual = {"strategy": "Gradual", "gradual": {"stepPercent": 5, "stepInterval": "3s"}}
    world = world_with(healthy(), rollback=gradual)
    at_weight(world, 25)
    world.metrics.values[ERRORS] = 0.3  # still failing during the whole walk (15 s)
    at_weight(world, 0, limit=60)
    assert world.writes[-6:] == [(25, 0), (20, 0), (15, 0), (10, 0), (5, 0), (0, 100)]
    assert reasons(world).count("AutomaticRollback") == 1


def test_still_failing_at_a_safe_position_with_traffic_rolls_back_to_an_older_snapshot() -> None:
    world = world_with(healthy(), targetPhase="Full", stateMigration=STATE)
    promoted_to(world, 100)
    world.metrics.values[ERRORS] = 0.3
    at_weight(world, 90, limit=20)  # the snapshot before Full: RampUp 90
    at_weight(world, 25, limit=20)  # still failing there: the one before RampUp (StateMigration, 25)
    assert reasons(world).count("AutomaticRollback") == 2
    assert world.status["rollback"]["toPhase"] == "StateMigration"


def test_the_rollback_is_announced_once_not_again_by_its_stalled_condition() -> None:
    world = world_with(healthy())
    at_weight(world, 10)
    world.metrics.values[ERRORS] = 0.2
    at_weight(world, 0, limit=10)
    warnings = [e for d in world.decisions for e in d.events if e.type == "Warning"]
    rollback = next(e for e in warnings if e.reason == "AutomaticRollback")
    assert [e.reason for e in warnings if e.message.startswith(rollback.message)] == ["AutomaticRollback"]
