"""What a migration amounts to for scripts: the exit code and the headline, from statuses the real
decision core writes (driven by the in-memory world), never hand-made ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hal9_migration import analysis
from hal9_migration.controls import Verb, annotation
from hal9_migration.kubectl import summary
from tests.support.machine import World
from tests.unit.test_machine_rehearsal import ANALYSIS, ERRORS, healthy
from tests.unit.test_timeline import spec

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def obj(world: World) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "hal9", "name": world.name, "generation": world.generation},
        "spec": world.spec,
        "status": world.status,
    }


def test_no_status_yet_is_moving_with_no_headline() -> None:
    s = summary.summarise({"metadata": {"name": "m", "namespace": "hal9", "generation": 1}, "spec": spec()})
    assert (s.exit_code, s.headline, s.phase) == (summary.MOVING, None, "-")
    assert s.condition.startswith("Unknown")


def test_moving_then_at_target_then_a_new_spec_not_yet_seen() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=5), T0)
    world.step()
    moving = summary.summarise(obj(world))
    assert (moving.exit_code, moving.phase, moving.step, moving.condition) == (
        summary.MOVING,
        "Shadow",
        "1/1",
        "Reconciling: WaitingForStep",
    )
    world.run(30)
    there = summary.summarise(obj(world))
    assert (there.exit_code, there.phase, there.step, there.weight) == (summary.AT_TARGET, "Canary", "2/4", 5)
    assert there.condition == "Ready: TargetReached"
    world.edit(trafficSplit=10)  # applied, the operator has not seen it yet: not at the target
    assert summary.summarise(obj(world)).exit_code == summary.MOVING


def test_an_abort_needs_a_person_and_stalled_is_the_headline() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=None), T0)
    world.run(12)
    world.annotations[annotation(Verb.PAUSE)] = "alice"
    world.step()
    assert summary.summarise(obj(world)).condition == "Paused: PausedByAnnotation"
    world.annotations[annotation(Verb.ABORT)] = "alice"
    world.step()
    s = summary.summarise(obj(world))
    assert (s.exit_code, s.condition) == (summary.NEEDS_A_PERSON, "Stalled: Aborted")


def test_a_firing_rollback_trigger_needs_a_person_before_the_rollback() -> None:
    world = World(
        spec(targetPhase="Canary", trafficSplit=None, analysis=ANALYSIS),
        T0,
        metrics=analysis.NoopProvider(healthy(**{ERRORS: 0.2})),  # above rollback.maxErrorRate
    )
    for _ in range(40):
        world.step(0.5)
        if world.condition("Degraded") == ("True", "RollbackTriggerFiring"):
            break
    s = summary.summarise(obj(world))
    assert (s.exit_code, s.condition) == (summary.NEEDS_A_PERSON, "Degraded: RollbackTriggerFiring")


def test_an_invalid_spec_is_summarised_without_crashing() -> None:
    world = World({**spec(), "targetPhase": "Canery"}, T0)
    world.step()
    s = summary.summarise(obj(world))
    assert (s.exit_code, s.condition, s.step) == (summary.NEEDS_A_PERSON, "Stalled: InvalidSpec", "")


def test_worst_of_many() -> None:
    assert summary.worst([]) == summary.AT_TARGET
    assert summary.worst([0, 2, 1]) == summary.NEEDS_A_PERSON
