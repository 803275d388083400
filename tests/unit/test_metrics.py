"""The operator's gauges per migration, from statuses the decision core wrote (the in-memory world)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest

from hal9_migration import analysis, exporter, metrics, plan
from hal9_migration.controls import Verb, annotation
from tests.support.machine import World
from tests.unit.test_machine_rehearsal import ANALYSIS, ERRORS, healthy
from tests.unit.test_timeline import spec

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def gauges(world: World) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = metrics.samples(plan.parse_spec(world.spec), plan.load_status(world.status))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in found}


def test_the_gauges_follow_the_walk() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=None), T0)
    assert gauges(world)[("hal9_migration_phase", ())] == 0
    world.run(1 + 10 + 5 + 1)  # Canary step 2 (5 %)
    now = gauges(world)
    assert now[("hal9_migration_phase", ())] == 2 and now[("hal9_migration_step", ())] == 2
    assert now[("hal9_migration_traffic_percent", (("system", "hierarchical"),))] == 5
    assert now[("hal9_migration_traffic_percent", (("system", "flat"),))] == 95
    assert now[("hal9_migration_progress_percent", ())] == 60.0  # 3 of the 5 moves from the start
    assert now[("hal9_feature_flag_percentage", (("flag", "hierarchical"),))] == 5
    assert now[("hal9_feature_flag_enabled", (("flag", "internal-users"),))] == 1
    assert now[("hal9_migration_condition", (("type", "Reconciling"),))] == 1
    assert now[("hal9_migration_condition", (("type", "Ready"),))] == 0
    world.run(30)
    done = gauges(world)
    assert done[("hal9_migration_progress_percent", ())] == 100.0
    assert done[("hal9_migration_condition", (("type", "Ready"),))] == 1


def test_an_abort_clears_the_flags_and_counts_as_a_rollback_once() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=None), T0)
    world.run(15)
    world.annotations[annotation(Verb.ABORT)] = "alice"
    decision = world.step(1)
    now = gauges(world)
    assert now[("hal9_migration_phase", ())] == 0
    assert now[("hal9_feature_flag_enabled", (("flag", "internal-users"),))] == 0
    assert now[("hal9_migration_condition", (("type", "Stalled"),))] == 1
    assert now[("hal9_migration_halted", (("reason", "Aborted"),))] == 1
    assert now[("hal9_migration_halted", (("reason", "RolledBack"),))] == 0
    reasons = [e.reason for e in decision.events]
    assert reasons.count("Aborted") == 2
    assert metrics.rollbacks(reasons, plan.load_status(world.status)) == {"abort"}


def test_an_automatic_rollback_is_counted_by_its_triggers_and_served() -> None:
    world = World(
        spec(targetPhase="Canary", trafficSplit=None, analysis=ANALYSIS),
        T0,
        metrics=analysis.NoopProvider(healthy()),
    )
    while world.status.get("weight") != 10:
        world.step(0.5)
    world.metrics.values[ERRORS] = 0.2
    reasons: list[str] = []
    for _ in range(20):
        reasons += [e.reason for e in world.step(0.5).events]
    status = plan.load_status(world.status)
    assert metrics.rollbacks(reasons, status) == {"error-rate,health-score"}
    assert gauges(world)[("hal9_migration_halted", (("reason", "RolledBack"),))] == 1
    assert gauges(world)[("hal9_migration_analysis_verdict", (("verdict", "Fail"),))] == 1
    assert gauges(world)[("hal9_migration_health_status", ())] == status.health.score  # type: ignore[union-attr]

    exporter.observe("hal9", "served", plan.parse_spec(world.spec), status, reasons)
    text = generate_latest(exporter.REGISTRY).decode()
    assert 'hal9_migration_phase{migration="served",namespace="hal9"} 1.0' in text
    counted = 'reason="error-rate,health-score"} 1.0'
    assert f'hal9_migration_rollbacks_total{{migration="served",namespace="hal9",{counted}' in text
    exporter.forget("hal9", "served")  # deleted: its gauges go, not freeze
    left = generate_latest(exporter.REGISTRY).decode()
    assert 'hal9_migration_phase{migration="served"' not in left
    assert 'hal9_migration_traffic_percent{migration="served"' not in left


def test_an_invalid_spec_still_gives_what_status_can_tell() -> None:
    world = World({**spec(), "targetPhase": "Canery"}, T0)
    world.step()
    names = {s.name for s in metrics.samples(plan.parse_spec(world.spec), plan.load_status(world.status))}
    assert "hal9_migration_phase" in names and "hal9_migration_progress_percent" not in names
