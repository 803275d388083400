"""The phase machine driven through whole migrations, with a clock and a route object in memory."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal9_migration import phases, plan
from hal9_migration.controls import Verb, annotation
from hal9_migration.models import Hal9MigrationSpec
from tests.support.machine import World
from tests.support.manifests import load_sample

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
MOVES = {"Started", "Advanced", "Promoted", "RolledBack", "RollingBack", "PartiallyRolledBack", "Aborted"}


def spec(**changes: Any) -> dict[str, Any]:
    base = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    base.pop("analysis")
    base["phases"] = {
        "shadow": {"duration": "10s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [1, 5, 10, 25], "stepDuration": "5s"},
        "rampUp": {"steps": [50, 75, 90], "stepDuration": "5s"},
    }
    base["rollback"] = {"strategy": "Immediate"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def moves(world: World) -> list[tuple[str, int]]:
    return [(h["reason"], h["weight"]) for h in world.status.get("history", []) if h["reason"] in MOVES]


def test_walks_shadow_then_canary_steps_and_holds_at_the_traffic_split() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.run(60)
    assert world.writes == [(0, 100), (1, 0), (5, 0), (10, 0)]
    assert world.condition("Ready") == ("True", "TargetReached")
    assert (world.status["phase"], world.status["step"], world.status["weight"]) == ("Canary", 3, 10)
    assert world.route.targeting == ("internal-users",)
    times = [datetime.fromisoformat(h["time"]) for h in world.status["history"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps == [10, 5, 5]  # Shadow held for its duration, each canary step for stepDuration


def test_a_split_between_steps_becomes_the_last_step() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=15), T0)
    world.run(60)
    assert [w for w, _ in world.writes] == [0, 1, 5, 10, 15]


def test_a_step_falls_due_exactly_at_its_time_and_not_before() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=1), T0)
    first = world.step()
    assert first.requeue_after == 10  # Shadow's duration: the daemon sleeps exactly that long
    world.step(9.9)
    assert world.writes == [(0, 100)]
    assert world.condition("Reconciling") == ("True", "WaitingForStep")
    world.step(0.1)
    assert world.writes == [(0, 100), (1, 0)]


def test_snapshots_are_taken_before_each_phase() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=5), T0)
    world.run(30)
    snapshots = world.status["snapshots"]
    assert [(s.get("phase", None), s["weight"]) for s in snapshots] == [
        (None, 0),
        ("Shadow", 0),
    ]
    assert snapshots[-1]["spec"]["targetPhase"] == "Canary"
    assert snapshots[-1]["targeting"][0]["name"] == "internal-users"


def test_the_state_migration_gate_holds_and_stalls_at_the_deadline_naming_it() -> None:
    world = World(
        spec(targetPhase="RampUp", trafficSplit=None, progressDeadline="30s", stateMigration=STATE), T0
    )
    world.run(40)
    assert world.status["phase"] == "StateMigration" and world.status["weight"] == 25
    assert world.condition("Reconciling") == ("True", "WaitingForGate")
    assert world.status["gate"]["name"] == "state-migration"
    world.run(30)
    assert world.condition("Stalled") == ("True", "ProgressDeadlineExceeded")
    message = next(c["message"] for c in world.status["conditions"] if c["type"] == "Stalled")
    assert "gate state-migration" in message and "StateMigration step 1" in message
    assert world.writes[-1] == (25, 0)


def test_analysis_without_data_holds_instead_of_pretending_and_retry_restarts_the_clock() -> None:
    world = World(
        spec(
            targetPhase="Canary",
            analysis={"prometheus": {"address": "http://p:9090"}},
            progressDeadline="20s",
        ),
        T0,
    )
    world.run(15)
    assert world.writes == [(0, 100)]
    assert world.condition("Reconciling") == ("True", "WaitingForGate")
    assert world.status["gate"]["verdict"] == "Inconclusive"
    assert "no series" in world.status["gate"]["reason"]
    world.run(20)
    assert world.condition("Stalled") == ("True", "ProgressDeadlineExceeded")
    world.annotations[annotation(Verb.RETRY)] = "alice"
    world.step()
    assert world.condition("Stalled")[0] == "False"
    assert world.condition("Reconciling") == ("True", "WaitingForGate")
    assert annotation(Verb.RETRY) not in world.annotations
    world.run(25)
    assert world.condition("Stalled") == ("True", "ProgressDeadlineExceeded")


# --- walking back --------------------------------------------------------------------------------


def reverted(strategy: dict[str, Any], target: str = "Shadow", split: int | None = None) -> World:
    world = World(spec(targetPhase="Canary", trafficSplit=25, rollback=strategy), T0)
    world.run(40)
    assert world.writes[-1] == (25, 0)
    world.writes.clear()
    world.edit(targetPhase=target, trafficSplit=split)
    return world


def test_immediate_rollback_writes_the_target_in_one_step() -> None:
    world = reverted({"strategy": "Immediate"})
    world.step()
    assert world.writes == [(0, 100)]
    world.run(30)
    assert world.writes == [(0, 100)]
    assert world.condition("Ready") == ("True", "RolledBack")


def test_gradual_rollback_steps_down_every_interval_then_writes_the_target() -> None:
    world = reverted({"strategy": "Gradual", "gradual": {"stepPercent": 10, "stepInterval": "5s"}})
    world.step()
    assert world.writes == [(15, 0)]
    assert world.condition("Reconciling") == ("True", "RollingBack")
    world.step(4.9)
    assert world.writes == [(15, 0)]
    world.step(0.1)
    world.run(20)
    assert world.writes == [(15, 0), (5, 0), (0, 100)]
    assert world.condition("Ready") == ("True", "RolledBack")


def test_gradual_rollback_inside_canary_ends_exactly_at_the_lower_split() -> None:
    world = reverted(
        {"strategy": "Gradual", "gradual": {"stepPercent": 10, "stepInterval": "5s"}}, "Canary", 1
    )
    world.run(30)
    assert world.writes == [(15, 0), (5, 0), (1, 0)]
    assert (world.status["phase"], world.status["step"]) == ("Canary", 1)


def test_partial_rollback_of_routing_keeps_the_match_routes() -> None:
    world = reverted({"strategy": "Partial", "partial": {"components": ["routing"]}})
    world.spec["targeting"] = []
    world.run(10)
    assert world.writes == [(0, 100)]
    assert world.route.targeting == ("internal-users",)  # held, although the spec dropped the rule
    assert world.condition("Ready") == ("True", "PartiallyRolledBack")
    world.edit(paused=False)  # any new spec ends the hold
    world.step()
    assert world.route.targeting == ()


def test_partial_rollback_of_targeting_keeps_the_weights() -> None:
    world = reverted({"strategy": "Partial", "partial": {"components": ["targeting"]}})
    world.spec["targeting"] = []
    world.run(10)
    assert world.writes == []
    assert world.route.weight == 25 and world.route.targeting == ()
    assert world.condition("Ready") == ("True", "PartiallyRolledBack")
    message = next(c["message"] for c in world.status["conditions"] if c["type"] == "Ready")
    assert "routing left as it was" in message


# --- controls -------------------------------------------------------------------------------------


def test_pause_and_resume_annotations() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.step()
    world.annotations[annotation(Verb.PAUSE)] = "bob"
    world.step()
    assert world.condition("Paused") == ("True", "PausedByAnnotation")
    assert world.status["controls"]["pausedBy"] == "bob"
    world.run(60)
    assert world.writes == [(0, 100)]
    assert world.condition("Reconciling")[0] == "False"
    world.annotations[annotation(Verb.RESUME)] = "bob"
    world.step()
    assert world.writes == [(0, 100), (1, 0)]
    assert {"Paused", "Resumed"} <= {h["reason"] for h in world.status["history"] if h["actor"] == "bob"}


def test_promote_skips_the_current_wait_once() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.step()
    world.annotations[annotation(Verb.PROMOTE)] = "carol"
    world.step(1)
    assert world.writes == [(0, 100), (1, 0)]
    assert world.status["history"][-1]["actor"] == "carol"
    world.step(1)  # the next step waits its full duration again
    assert world.writes == [(0, 100), (1, 0)]


def test_a_control_whose_removal_was_lost_acts_only_once() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.step()
    world.annotations[annotation(Verb.PROMOTE)] = "carol"
    decision = world.step(1)
    world.annotations[annotation(Verb.PROMOTE)] = "carol"  # the removal never landed
    again = world.step(1)
    assert world.writes == [(0, 100), (1, 0)]
    assert [c.verb for c in decision.consume] == [c.verb for c in again.consume] == [Verb.PROMOTE]
    world.step()  # now seen gone: the record is dropped, so the same value may act again later
    assert "promote" not in world.status.get("controls", {}).get("consumed", {})


def test_promote_at_the_target_is_ignored_and_says_why() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=1), T0)
    world.run(20)
    world.annotations[annotation(Verb.PROMOTE)] = "dave"
    decision = world.step()
    assert ("Warning", "PromoteIgnored") in [(e.type, e.reason) for e in decision.events]
    assert world.writes[-1] == (1, 0)


def test_abort_sends_everything_to_flat_and_holds_until_retry() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.run(20)
    world.annotations[annotation(Verb.ABORT)] = "erin"
    world.step()
    assert world.writes[-1] == (0, 0) and world.route.targeting == ()
    assert world.condition("Stalled") == ("True", "Aborted")
    world.run(60)  # the same spec, re-applied by Git or not, does not move it
    assert world.writes[-1] == (0, 0)
    world.annotations[annotation(Verb.RETRY)] = "erin"
    world.step()
    assert world.writes[-1] == (0, 100)  # starts again from Shadow
    assert world.condition("Stalled")[0] == "False"


def test_a_new_spec_ends_an_abort() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.run(20)
    world.annotations[annotation(Verb.ABORT)] = "erin"
    world.step()
    world.edit(trafficSplit=5)
    world.step()
    assert world.writes[-1] == (0, 100)


def test_spec_paused_holds_forward_steps_but_not_a_walk_back() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.run(20)
    world.edit(paused=True)
    world.run(30)
    assert world.route.weight == 5
    assert world.condition("Paused") == ("True", "PausedBySpec")
    world.edit(targetPhase="Shadow", trafficSplit=None)
    world.step()
    assert world.writes[-1] == (0, 100)


# --- restarts and the route object ------------------------------------------------------------------


def test_a_lost_status_write_is_recovered_from_the_route_record_without_repeating_the_step() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.run(12)
    before = copy.deepcopy(world.status)
    world.step(5)  # moves to 5%; pretend the status write after it never landed
    assert world.writes[-1] == (5, 0)
    world.status = before
    world.step()
    assert world.writes[-1] == (5, 0)
    assert [w for r, w in moves(world)] == [0, 1, 5]
    assert "the status write after this move did not land" in world.status["history"][-1]["message"]
    world.run(20)
    assert [w for w, _ in world.writes] == [0, 1, 5, 10]


def test_weights_changed_by_hand_are_restored() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10), T0)
    world.run(40)
    world.route.weight = 50
    decision = world.step()
    assert world.route.weight == 10
    assert ("Warning", "RouteRestored") in [(e.type, e.reason) for e in decision.events]


def test_a_recreated_route_object_resumes_from_status() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=25), T0)
    world.run(18)
    at = world.route.weight
    world.route = type(world.route)()  # deleted and re-created from Git: no record, default weights
    world.step()
    assert world.route.weight == at
    world.run(30)
    assert [w for w, _ in world.writes][-2:] == [10, 25]


# --- properties -------------------------------------------------------------------------------------

TARGETS = st.sampled_from(["Shadow", "Canary"])
STRATEGIES = st.sampled_from(
    [
        {"strategy": "Immediate"},
        {"strategy": "Gradual", "gradual": {"stepPercent": 7, "stepInterval": "3s"}},
        {"strategy": "Partial", "partial": {"components": ["routing", "targeting"]}},
    ]
)


@st.composite
def edits(draw: st.DrawFn) -> dict[str, Any]:
    target = draw(TARGETS)
    split = draw(st.sampled_from([None, 1, 3, 5, 10, 17, 25])) if target == "Canary" else None
    return {
        "targetPhase": target,
        "trafficSplit": split,
        "rollback": draw(STRATEGIES),
        "paused": draw(st.booleans()) and draw(st.booleans()),
    }


@settings(max_examples=60, deadline=None)
@given(sequence=st.lists(st.tuples(edits(), st.integers(0, 30)), min_size=1, max_size=6))
def test_any_sequence_of_spec_edits_ends_at_the_last_target_and_holds(
    sequence: list[tuple[dict[str, Any], int]],
) -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=None), T0)
    for changes, wait in sequence:
        world.edit(**changes)
        for _ in range(wait):
            before = (world.route.weight, world.route.mirror, len(moves(world)))
            decision = world.step(1)
            assert 0 <= world.route.weight <= 100 and 0 <= world.route.mirror <= 100
            assert len(moves(world)) - before[2] <= 1  # at most one step per pass
            repeat = world.step(0)  # the same pass again, on the same input
            assert (not repeat.changed and repeat.route == decision.route) or repeat.route is None
            assert (
                (world.route.weight, world.route.mirror)
                == (decision.route.routing.weight, decision.route.routing.mirror)
                if decision.route
                else True
            )
    world.edit(paused=False)
    world.run(120)
    target = phases.path(Hal9MigrationSpec.model_validate(world.spec))[-1]
    assert (world.route.weight, world.route.mirror) == (target.weight, target.mirror)
    assert world.condition("Ready")[0] == "True"
    writes = len(world.writes)
    world.run(30)
    assert len(world.writes) == writes


STATE = {
    "image": "hal9-migration-operator:0.1.0",
    "source": {"urlSecretRef": {"name": "flat-db", "key": "url"}},
    "target": {"urlSecretRef": {"name": "hier-db", "key": "url"}},
}


@pytest.mark.parametrize(
    ("target", "split", "weights"),
    [
        ("Shadow", None, [0]),
        ("Canary", None, [0, 1, 5, 10, 25]),
        ("Canary", 7, [0, 1, 5, 7]),
        ("StateMigration", 3, [0, 1, 3, 3]),
        ("StateMigration", 0, [0, 0]),
        ("RampUp", 60, [0, 1, 5, 10, 25, 25, 50, 60]),
        ("Full", None, [0, 1, 5, 10, 25, 25, 50, 75, 90, 100]),
    ],
)
def test_the_path_to_each_target(target: str, split: int | None, weights: list[int]) -> None:
    parsed = plan.parse_spec(spec(targetPhase=target, trafficSplit=split, stateMigration=STATE))
    assert isinstance(parsed, Hal9MigrationSpec), parsed
    assert [p.weight for p in phases.path(parsed)[1:]] == weights


def test_a_gradual_interval_past_the_calendar_holds_instead_of_crashing() -> None:
    huge = {"strategy": "Gradual", "gradual": {"stepPercent": 1, "stepInterval": "999999d999999d999999d"}}
    world = reverted(huge)
    world.run(5)
    assert world.writes == [(24, 0)]  # the first step at once, the next one never due
    assert world.condition("Reconciling") == ("True", "RollingBack")
