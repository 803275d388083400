"""The plan ahead (``timeline``): the steps the machine will take, and no earlier than it says."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hal9_migration import phases, plan, timeline
from hal9_migration.clock import parse_time
from hal9_migration.models import Hal9MigrationSpec, Phase, PositionRecord
from tests.support.machine import World
from tests.support.manifests import load_sample

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


STATE = load_sample("all-five-phases")["spec"]["stateMigration"]


def spec(**changes: Any) -> dict[str, Any]:
    base = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    base.pop("analysis")
    base["stateMigration"] = STATE
    base["phases"] = {
        "shadow": {"duration": "10s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [1, 5, 10, 25], "stepDuration": "5s"},
        "rampUp": {"steps": [50, 75, 90], "stepDuration": "7s"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def model(raw: dict[str, Any]) -> Hal9MigrationSpec:
    parsed = plan.parse_spec(raw)
    assert not isinstance(parsed, str), parsed
    return parsed


@pytest.mark.parametrize("target", ["Canary", "Full"])
def test_the_plan_names_every_step_of_the_path_and_the_machine_takes_each_when_it_says(target: str) -> None:
    # A rehearsal runs no Job, so the walk to Full is all time gates too.
    raw = spec(targetPhase=target, trafficSplit=None, rehearsal=target == "Full")
    ahead = timeline.plan(model(raw), None, T0)
    assert [s.position for s in ahead.steps] == phases.path(model(raw))[1:]
    assert ahead.direction == "forward" and not any(s.current for s in ahead.steps)
    assert ahead.steps[-1].leaves is None  # the target holds

    world = World(raw, T0)
    taken: dict[tuple[Phase | None, int], datetime] = {}
    for _ in range(400):
        world.step(0.25)
        record = plan.load_status(world.status).position
        if record is not None:
            at = parse_time(record.since)
            assert at is not None
            taken.setdefault((record.phase, record.weight), at)
    # Without analysis every gate is time only: each step is taken at its earliest time (to a tick).
    for step in ahead.steps:
        assert step.reached is not None
        actual = taken[(step.position.phase, step.position.weight)]
        assert timedelta(0) <= actual - step.reached <= timedelta(seconds=0.25 * len(ahead.steps)), step


def test_from_a_live_position_the_current_step_comes_first_and_times_count_from_when_it_was_taken() -> None:
    record = PositionRecord(phase=Phase.CANARY, step=2, weight=5, since="2026-11-25T12:00:00.000Z")
    ahead = timeline.plan(
        model(spec(targetPhase="Canary", trafficSplit=None)), record, T0 + timedelta(hours=1)
    )
    assert [(s.position.weight, s.current) for s in ahead.steps] == [(5, True), (10, False), (25, False)]
    assert ahead.steps[0].reached == T0
    assert ahead.steps[1].reached == T0 + timedelta(seconds=5)  # a late plan still says when it was due


def test_after_a_state_migration_the_times_are_unknown_unless_rehearsing() -> None:
    raw = load_sample("all-five-phases")["spec"]
    ahead = timeline.plan(model(raw), None, T0)
    state = next(i for i, s in enumerate(ahead.steps) if s.position.phase is Phase.STATE_MIGRATION)
    assert ahead.steps[state].hold is None and ahead.steps[state].gate == "state-migration"
    assert "every shard succeeded and NoDataLoss passed" in ahead.steps[state].criteria
    assert all(s.reached is None for s in ahead.steps[state + 1 :])
    rehearsed = timeline.plan(model({**raw, "rehearsal": True}), None, T0)
    assert all(s.reached is not None for s in rehearsed.steps)


def test_a_target_below_the_position_is_a_walk_back_with_the_rollback_strategy() -> None:
    record = PositionRecord(phase=Phase.RAMP_UP, step=1, weight=50, since="2026-11-25T12:00:00.000Z")
    ahead = timeline.plan(model(spec(targetPhase="Canary", trafficSplit=10)), record, T0)
    assert ahead.direction == "back"
    assert [s.position.weight for s in ahead.steps] == [50, 10]
    assert "rollback.strategy" in ahead.note


def test_the_gate_criteria_name_each_limit_and_where_it_comes_from() -> None:
    raw = spec(targetPhase="Full", trafficSplit=None, phases={"shadow": {"mode": "Proxy"}})
    raw["analysis"] = {"prometheus": {"address": "http://prometheus.monitoring:9090"}}
    ahead = timeline.plan(model(raw), None, T0)
    by_phase = {s.position.phase: s for s in ahead.steps}
    shadow = by_phase[Phase.SHADOW]
    assert shadow.through_proxy and shadow.route_mirror == 0
    assert shadow.criteria[0] == "traffic goes through the shadow proxy"
    assert "output-parity >= 0.99 (phases.shadow.minOutputParity)" in shadow.criteria
    assert "error-rate < 0.001 (phases.canary.maxErrorRate)" in by_phase[Phase.CANARY].criteria
    ramp = by_phase[Phase.RAMP_UP]
    assert any("phases.rampUp.stableFor" in c for c in ramp.criteria)
    assert ramp.hold == max(timedelta(days=1), timedelta(hours=1))


@pytest.mark.parametrize("target", ["Shadow", "Canary", "Full"])
def test_at_the_target_the_plan_is_that_one_step(target: str) -> None:
    raw = spec(targetPhase=target, trafficSplit=None)
    last = phases.path(model(raw))[-1]
    record = PositionRecord(
        phase=last.phase,
        step=last.step,
        weight=last.weight,
        mirror=last.mirror,
        since="2026-11-25T12:00:00.000Z",
    )
    ahead = timeline.plan(model(raw), record, T0)
    assert ahead.direction == "at target"
    assert [(s.position, s.current, s.leaves) for s in ahead.steps] == [(last, True, None)]
