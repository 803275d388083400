"""A rehearsal (``spec.rehearsal: true``) in the phase machine (pure): the whole plan walked with every
gate evaluated, nothing written to the route object, no state-migration Job, no shadow proxy; history
says what it would have done."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hal9_migration import analysis, phases, plan, shadowproxy
from hal9_migration.analysis.verdicts import REHEARSAL_PARITY_NOTE
from hal9_migration.controls import Verb, annotation
from hal9_migration.models import Hal9MigrationSpec
from hal9_migration.report import REHEARSAL
from hal9_migration.rollback import spec_hash
from tests.support.machine import World
from tests.support.manifests import load_sample

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
MOVES = {"Started", "Advanced", "Promoted", "RolledBack", "RollingBack", "Aborted"}
STATE = {
    "image": "hal9-migration-operator:0.1.0",
    "source": {"urlSecretRef": {"name": "flat-db", "key": "url"}},
    "target": {"urlSecretRef": {"name": "hier-db", "key": "url"}},
    "workers": 3,
}
# Metric names in HAL9's default queries (the NoopProvider answers by substring).
ERRORS = "hal9_errors_total"
P99 = 'bucket{namespace="hal9",system="hierarchical"}'
FLAT_P99 = 'bucket{namespace="hal9",system="flat"}'
CPU = "container_cpu_usage_seconds_total"
MEMORY = "container_memory_working_set_bytes"
ANALYSIS = {"prometheus": {"address": "http://prometheus:9090"}, "interval": "2s", "failureLimit": 2}


def spec(**changes: Any) -> dict[str, Any]:
    base = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    base.pop("analysis")
    base.pop("trafficSplit")
    base["phases"] = {
        "shadow": {"duration": "10s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [1, 5, 10, 25], "stepDuration": "5s"},
        "rampUp": {"steps": [50, 75, 90], "stepDuration": "5s", "stableFor": "1s"},
    }
    base["rollback"] = {"strategy": "Immediate"}
    base.update(targetPhase="Full", stateMigration=STATE, rehearsal=True)
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def healthy(**changes: float) -> dict[str, float | None]:
    return {ERRORS: 0.0002, P99: 40.0, FLAT_P99: 38.0, CPU: 30.0, MEMORY: 40.0, **changes}


def moves(world: World, since: int = 0) -> list[tuple[str, str | None, int]]:
    """(reason, to phase, weight) of each move in history, from entry ``since`` on."""
    history = world.status.get("history", [])[since:]
    return [
        (h["reason"], h.get("to"), h.get("weight")) for h in history if h["reason"] in MOVES and "weight" in h
    ]


def acted_on_nothing(world: World, since: int = 0) -> None:
    """No decision from pass ``since`` on wrote the route object, touched a Job or a proxy."""
    decisions = world.decisions[since:]
    assert decisions
    assert all(d.route is None and d.state is None and d.proxy is None for d in decisions)
    assert not world.state.actions and not world.proxy.actions


def condition(world: World, kind: str) -> tuple[str, str, str]:
    found = next(c for c in world.status["conditions"] if c["type"] == kind)
    return found["status"], found["reason"], found.get("message", "")


def test_a_rehearsal_walks_every_step_to_full_without_writing_anything() -> None:
    world = World(spec(), T0)
    untouched = copy.deepcopy(world.route)
    world.run(90)
    acted_on_nothing(world)
    assert world.route == untouched and world.writes == []
    assert world.state.observed == 0 and world.proxy.observed == 0
    path = phases.path(Hal9MigrationSpec.model_validate(world.spec))[1:]
    would = [(p.phase.value if p.phase else None, p.weight) for p in path]
    assert [(to, weight) for _, to, weight in moves(world)] == would
    assert [reason for reason, _, _ in moves(world)] == ["Started"] + ["Advanced"] * (len(path) - 1)
    assert all(h["message"].startswith(REHEARSAL) for h in world.status["history"])
    events = [e.message for d in world.decisions for e in d.events]
    assert all(m.startswith((REHEARSAL, "Rehearsal reached the target")) for m in events), events
    status, reason, message = condition(world, "Ready")
    assert (status, reason) == ("True", "TargetReached")
    assert message.startswith("Rehearsal reached the target: Holding at Full step 1 (100%)")
    assert message.endswith("the route object was not changed")
    assert world.status["position"]["rehearsal"] is True
    assert (world.status["phase"], world.status["weight"]) == ("Full", 100)
    assert "stateMigration" not in world.status and "shadow" not in world.status
    assert world.decisions[-1].summary.startswith(REHEARSAL)
    assert world.step(0).changed is False  # the same pass again changes nothing


def test_the_state_migration_step_passes_without_a_job_and_says_what_would_have_run() -> None:
    world = World(spec(), T0)
    world.run(90)
    leaving = next(h for h in world.status["history"] if h.get("from") == "StateMigration")
    assert leaving["reason"] == "Advanced" and leaving["to"] == "RampUp"
    assert "gate state-migration-rehearsal passed" in leaving["message"]
    would = "the state-migration Job (3 workers, image hal9-migration-operator:0.1.0) would run here"
    assert f"{would}; not run in a rehearsal" in leaving["message"]
    assert world.state.observed == 0 and not world.state.actions


def test_a_rehearsal_held_at_state_migration_does_not_spin() -> None:
    world = World(spec(targetPhase="StateMigration"), T0)
    world.run(60)
    assert world.condition("Ready") == ("True", "TargetReached")
    assert world.step(1).requeue_after is None  # no Job to poll: nothing falls due
    world.annotations[annotation(Verb.PAUSE)] = "bob"
    assert world.step(1).requeue_after is None
    acted_on_nothing(world)


def test_a_rehearsal_of_a_live_migration_starts_where_the_route_object_stands() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10, stateMigration=None, rehearsal=None), T0)
    world.run(40)
    assert world.writes[-1] == (10, 0) and world.route.record is not None
    live = copy.deepcopy(world.route)
    world.edit(targetPhase="Full", trafficSplit=None, stateMigration=STATE, rehearsal=True)
    history, passes = len(world.status["history"]), len(world.decisions)
    first = world.step()
    assert first.changed and world.step(0).changed is False
    world.run(60)
    acted_on_nothing(world, passes)
    assert world.route == live  # weights and the operator's record on it, as the real run left them
    rehearsed = world.status["history"][history:]
    assert (rehearsed[0]["reason"], rehearsed[0]["from"], rehearsed[0]["to"], rehearsed[0]["weight"]) == (
        "Advanced",
        "Canary",
        "Canary",
        25,
    )
    assert [(to, weight) for _, to, weight in moves(world, history)] == [
        ("Canary", 25),
        ("StateMigration", 25),
        ("RampUp", 50),
        ("RampUp", 75),
        ("RampUp", 90),
        ("Full", 100),
    ]
    assert all(h["message"].startswith(REHEARSAL) for h in rehearsed)
    assert world.condition("Ready") == ("True", "TargetReached")


def test_after_the_rehearsal_the_walk_goes_on_from_the_route_objects_own_record() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=10, stateMigration=None, rehearsal=None), T0)
    world.run(40)
    record = copy.deepcopy(world.route.record)
    world.edit(targetPhase="Full", trafficSplit=None, stateMigration=STATE, rehearsal=True)
    world.run(60)
    assert world.status["phase"] == "Full" and world.route.record == record
    world.edit(rehearsal=False)
    history = len(world.status["history"])
    world.step()
    ended = world.status["history"][history]
    assert ended["reason"] == "RehearsalEnded" and not ended["message"].startswith(REHEARSAL)
    assert "ended at Full step 1 (100%)" in ended["message"]
    assert "goes on from Canary step 3 (10%)" in ended["message"]
    # The rehearsed position is not believed: the real walk takes the step after the route's record.
    assert world.writes[-1] == (25, 0)
    advanced = world.status["history"][history + 1]
    assert (advanced["reason"], advanced["from"], advanced["weight"]) == ("Advanced", "Canary", 25)
    assert not advanced["message"].startswith(REHEARSAL)
    assert "the status write after this move did not land" not in str(world.status["history"])
    world.run(7)
    assert world.status["phase"] == "StateMigration" and "rehearsal" not in world.status["position"]
    assert world.state.actions and world.state.actions[0].verb == "create"


def test_after_a_rehearsal_from_scratch_the_real_walk_starts_at_shadow() -> None:
    world = World(spec(), T0)
    world.run(90)
    assert world.status["phase"] == "Full"
    world.edit(rehearsal=False)
    world.step()
    assert world.writes == [(0, 100)]
    reasons = [h["reason"] for h in world.status["history"][-2:]]
    assert reasons == ["RehearsalEnded", "Started"]
    assert world.status["phase"] == "Shadow" and "rehearsal" not in world.status["position"]
    assert "rehearsal" not in (world.route.record or {})


def test_promote_and_abort_act_on_the_rehearsal() -> None:
    slow = {"shadow": {"duration": "1h", "mode": "Mirror"}, "canary": {"steps": [1, 5], "stepDuration": "1h"}}
    world = World(spec(phases=slow, targetPhase="Canary", stateMigration=None), T0)
    world.step()
    world.annotations[annotation(Verb.PROMOTE)] = "carol"
    world.step(1)
    assert moves(world)[-1] == ("Promoted", "Canary", 1)
    promoted = world.status["history"][-1]
    assert promoted["actor"] == "carol" and promoted["message"].startswith(REHEARSAL)
    assert annotation(Verb.PROMOTE) not in world.annotations
    world.annotations[annotation(Verb.ABORT)] = "erin"
    world.step(1)
    assert moves(world)[-1] == ("Aborted", None, 0)
    status, reason, message = condition(world, "Stalled")
    assert (status, reason) == ("True", "Aborted") and message.startswith(REHEARSAL + "Aborted by erin")
    world.run(10)
    assert "phase" not in world.status and world.status["position"]["rehearsal"] is True
    acted_on_nothing(world)
    assert world.route.record is None and world.writes == []


def test_a_failing_analysis_holds_the_rehearsal_and_a_healthy_one_lets_it_go_on() -> None:
    world = World(
        spec(analysis=ANALYSIS, targetPhase="Canary", stateMigration=None),
        T0,
        metrics=analysis.NoopProvider(healthy(**{ERRORS: 0.01})),  # above the gate, below the trigger
    )
    world.run(40, tick=0.5)
    assert world.runs and all(run.request.phase.value == "Shadow" for run in world.runs)
    assert world.condition("Reconciling") == ("True", "WaitingForGate")
    gate = world.status["gate"]
    assert gate["verdict"] == "Fail" and "error-rate 0.01 >= 0.001" in gate["reason"]
    assert condition(world, "Reconciling")[2].startswith(REHEARSAL + "At Shadow step 1")
    assert world.status["analysis"]["notes"] == [REHEARSAL_PARITY_NOTE]
    assert moves(world) == [("Started", "Shadow", 0)]
    world.metrics.values[ERRORS] = 0.0002
    world.run(40, tick=0.5)
    assert world.condition("Ready") == ("True", "TargetReached")
    advanced = [h for h in world.status["history"] if h["reason"] == "Advanced"]
    assert len(advanced) == 4 and all("gate analysis passed" in h["message"] for h in advanced)
    acted_on_nothing(world)


def test_a_would_be_automatic_rollback_is_recorded_and_nothing_is_written() -> None:
    world = World(
        spec(analysis=ANALYSIS, targetPhase="Canary", stateMigration=None),
        T0,
        metrics=analysis.NoopProvider(healthy()),
    )
    while world.status.get("weight") != 10:
        world.step(0.5)
    world.metrics.values[ERRORS] = 0.2
    world.run(10, tick=0.5)
    assert moves(world)[-1] == ("RolledBack", "Shadow", 0)
    assert world.condition("Stalled") == ("True", "RolledBack")
    rollback = next(h for h in world.status["history"] if h["reason"] == "AutomaticRollback")
    assert rollback["message"].startswith(REHEARSAL + "Rolled back from Canary step 3 (10%) to Shadow step 1")
    acted_on_nothing(world)
    assert world.writes == []


def test_a_proxy_mode_rehearsal_runs_no_proxy_and_is_gated_as_mirror_mode() -> None:
    proxied = {
        "shadow": {"duration": "6s", "mode": "Proxy"},
        "canary": {"steps": [1, 5], "stepDuration": "4s"},
    }
    world = World(
        spec(phases=proxied, analysis=ANALYSIS, targetPhase="Canary", stateMigration=None),
        T0,
        metrics=analysis.NoopProvider(healthy()),
    )
    world.run(40, tick=0.5)
    assert world.condition("Ready") == ("True", "TargetReached")
    assert world.proxy.observed == 0 and not world.proxy.actions
    shadow_run = next(run for run in world.runs if run.request.phase.value == "Shadow")
    assert not any("hal9_shadow" in q.query for q in shadow_run.request.queries)
    leaving_shadow = next(h for h in world.status["history"] if h.get("from") == "Shadow")
    assert "gate analysis passed" in leaving_shadow["message"]
    acted_on_nothing(world)


def test_a_rehearsal_neither_restores_the_route_object_nor_minds_its_owner() -> None:
    world = World(spec(targetPhase="Canary", stateMigration=None), T0)
    world.route.owner = "hal9/another"  # another migration drives this route object
    world.run(15)
    assert world.status["phase"] == "Canary"
    world.route.weight = 50  # someone changes the weights while the rehearsal walks
    world.run(30)
    assert world.condition("Ready") == ("True", "TargetReached")
    reasons = {e.reason for d in world.decisions for e in d.events}
    assert "RouteRestored" not in reasons and "RouteInUse" not in reasons
    assert world.route.weight == 50
    acted_on_nothing(world)

    real = World(spec(targetPhase="Canary", stateMigration=None, rehearsal=None), T0)
    real.route.owner = "hal9/another"
    real.step()
    assert real.condition("Stalled") == ("True", "RouteInUse")


def test_the_edge_is_not_asked_to_look_at_the_job_or_the_proxy() -> None:
    parsed = plan.parse_spec(spec(phases={"shadow": {"mode": "Proxy"}}))
    assert isinstance(parsed, Hal9MigrationSpec)
    status = plan.load_status(
        {
            "position": {
                "phase": "StateMigration",
                "step": 1,
                "weight": 25,
                "since": "2026-11-28T11:00:00.000Z",
            }
        }
    )
    assert not plan.observes_state(parsed, status, status.position)
    assert not shadowproxy.observes(parsed, plan.load_status({}), "shadow-m")
    assert not shadowproxy.in_use(parsed)
    assert shadowproxy.shadow_routing(parsed).mirror == 0  # the real run's routing, for the router check


def test_rehearsing_is_not_a_new_spec_for_a_held_off_failed_one() -> None:
    """A held-off failed spec stays recognised across the upgrade that brought ``rehearsal`` (the
    field is absent from its dump) and when it is rehearsed: rehearsing is not a fix."""
    real = Hal9MigrationSpec.model_validate(spec(rehearsal=None))
    rehearsed = Hal9MigrationSpec.model_validate(spec())
    assert "rehearsal" not in real.model_dump(by_alias=True) and real.rehearsal is False
    assert spec_hash(real) == spec_hash(rehearsed)
    assert spec_hash(real) != spec_hash(
        Hal9MigrationSpec.model_validate(spec(rehearsal=None, targetPhase="Canary"))
    )


def test_what_a_rehearsal_measured_goes_when_it_ends() -> None:
    """Its analysis, health, rollback and the snapshots of phases the route object never left describe
    a walk that did not happen: a later real rollback must not aim at them."""
    world = World(spec(rehearsal=None, targetPhase="Canary", trafficSplit=5, stateMigration=None), T0)
    world.run(30)
    assert world.status["phase"] == "Canary" and world.writes[-1] == (5, 0)
    world.edit(rehearsal=True, targetPhase="Canary", trafficSplit=None, analysis=ANALYSIS)
    world.metrics = analysis.NoopProvider(healthy())
    while world.status.get("weight") != 25:
        world.step(0.5)
    world.metrics.values[ERRORS] = 0.2
    world.run(10, tick=0.5)
    assert world.condition("Stalled") == ("True", "RolledBack") and world.status.get("rollback")
    assert world.status.get("analysis") and world.status.get("health")
    world.edit(rehearsal=False, analysis={}, targetPhase="Canary", trafficSplit=5)
    world.step()
    assert "RehearsalEnded" in [h["reason"] for h in world.status["history"][-2:]]
    assert (world.status["phase"], world.status["weight"]) == ("Canary", 5)
    assert world.condition("Ready") == ("True", "TargetReached")
    for gone in ("rollback", "analysis", "health", "gate"):
        assert gone not in world.status, gone
    assert [s.get("phase") for s in world.status.get("snapshots", [])] == [None, "Shadow"]


def test_a_real_rollback_still_holds_its_failed_spec_off_after_a_rehearsal() -> None:
    """Rehearsing and then turning the rehearsal off must not release a spec that really failed."""
    failing = spec(rehearsal=None, analysis=ANALYSIS, targetPhase="Canary", stateMigration=None)
    world = World(failing, T0, metrics=analysis.NoopProvider(healthy()))
    while world.status.get("weight") != 10:
        world.step(0.5)
    world.metrics.values[ERRORS] = 0.2
    world.run(10, tick=0.5)
    assert world.condition("Stalled") == ("True", "RolledBack") and world.writes[-1] == (0, 100)
    real_rollback = world.status["rollback"]
    snapshots = world.status["snapshots"]
    world.edit(rehearsal=True)
    world.run(20, tick=0.5)
    world.spec = copy.deepcopy(failing)  # git puts the failed spec back as it was
    world.generation += 1
    writes = len(world.writes)
    world.run(20, tick=0.5)
    assert "RehearsalEnded" in [h["reason"] for h in world.status["history"]]
    assert world.condition("Stalled") == ("True", "RolledBack")
    assert world.writes[writes:] == [] and world.status["rollback"] == real_rollback
    assert world.status["snapshots"] == snapshots
