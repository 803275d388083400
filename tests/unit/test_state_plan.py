"""Phase 3 in the phase machine: one Job per attempt, the NoDataLoss gate, failures and retries (pure)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from hal9_migration.statemigration.stores.base import FailedRow, RunReport, ShardReport
from tests.support.machine import World
from tests.support.manifests import load_sample

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
STATE = {
    "image": "hal9-migration-operator:0.1.0",
    "source": {"urlSecretRef": {"name": "flat-db", "key": "url"}},
    "target": {"urlSecretRef": {"name": "hier-db", "key": "url"}},
    "workers": 2,
}


def spec(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    raw.pop("trafficSplit")
    raw.update(targetPhase="RampUp", stateMigration=copy.deepcopy(STATE), rollback={"strategy": "Immediate"})
    raw.update(changes)
    return raw


def report(
    migrated: int, total: int = 100, failed: int = 0, verified: bool = True, **extra: Any
) -> RunReport:
    halves = [(migrated // 2, failed // 2), (migrated - migrated // 2, failed - failed // 2)]
    return RunReport(
        cutoff="2026-11-27T00:00:00",
        shard_count=2,
        shards=[
            ShardReport(
                f"{i}/2", total // 2, m, f, 50.0, None, "Verified" if verified else "Running", f"t{i}"
            )
            for i, (m, f) in enumerate(halves)
        ],
        verified={f"shard {i}/2": True for i in range(2)} if verified else {},
        problems={},
        failed_rows=failed,
        first_failures=[FailedRow(f"id-{i}", "integrity", "weights differ") for i in range(min(failed, 5))],
        **extra,
    )


def at_state_migration(raw: dict[str, Any]) -> World:
    world = World(spec=raw, now=T0)
    world.step()
    for _ in range(200):
        if world.status.get("phase") == "StateMigration" and world.state.actions:
            return world
        world.step(1)
    raise AssertionError(f"never reached StateMigration: {world.status.get('phase')}")


def state(world: World) -> dict[str, Any]:
    return dict(world.status.get("stateMigration", {}))


def test_entering_state_migration_creates_one_job_and_holds_the_weight() -> None:
    world = at_state_migration(spec())
    assert [(a.verb, a.attempt, a.shards) for a in world.state.actions] == [("create", 1, 2)]
    assert world.route.weight == 25  # the canary's last weight, held
    world.run(10)  # the Job runs: passes observe it and never create another
    assert len(world.state.actions) == 1
    assert world.status["phase"] == "StateMigration"
    assert world.condition("Reconciling") == ("True", "WaitingForGate")
    assert "StateMigrationStarted" in [e.reason for d in world.decisions for e in d.events]


def test_progress_never_steps_back_while_shards_start_at_different_times() -> None:
    world = at_state_migration(spec())
    both = report(0, total=100)
    first_only = RunReport(
        both.cutoff, 2, [replace(both.shards[0], migrated=49, state="Running")], {}, {}, 0, []
    )
    world.state.report = first_only  # one shard nearly done, the other not started yet
    world.step(1)
    assert state(world)["percent"] == 49  # of about 100 rows, not 49 of the 50 reported
    world.state.report = replace(
        both,
        shards=[replace(both.shards[0], migrated=49, total=49), replace(both.shards[1], total=53)],
        verified={},
    )
    world.step(1)  # the real total (102) makes 48 %, but the figure shown does not go back
    assert state(world)["percent"] == 49
    world.state.report = replace(
        both,
        shards=[
            replace(both.shards[0], migrated=49, total=49),
            replace(both.shards[1], migrated=30, total=53),
        ],
        verified={},
    )
    world.step(1)
    assert state(world)["percent"] == 77


def test_progress_reaches_status_and_the_phase_passes_only_on_verification() -> None:
    world = at_state_migration(spec())
    world.state.report = report(40, verified=False)
    world.step(1)
    assert state(world) | {"lastCheckpoint": None} == state(world) | {
        "jobName": "job-1",
        "state": "Running",
        "total": 100,
        "migrated": 40,
        "failed": 0,
        "percent": 40,
        "rate": 100.0,
        "etaSeconds": 1,
        "lastCheckpoint": None,
    }
    assert world.decisions[-1].requeue_after == 2.0  # followed every few seconds
    world.state.report = report(100, verified=False)
    world.state.finish(1, complete=True)  # every index succeeded, but no verification recorded
    world.step(1)
    assert world.route.weight == 0 and "phase" not in world.status  # Immediate: back to all-flat
    assert "NoDataLoss failed" in state(world)["validation"]
    assert world.condition("Stalled") == ("True", "StateMigrationFailed")
    world.state.report = report(100)
    world.annotations["migration.hal9.ai/retry"] = "dba"
    world.run(60)
    assert world.state.actions[-1].attempt == 2
    world.state.finish(2, complete=True)
    world.run(30)
    assert state(world)["state"] == "Verified"
    assert state(world)["validation"].startswith(
        "NoDataLoss passed: 100 source rows = 100 migrated + 0 failed"
    )
    assert world.status["phase"] == "RampUp"


def test_a_missing_secret_stalls_without_a_job_until_it_exists() -> None:
    world = World(spec=spec(), now=T0)
    world.state.secret_problems = ["Secret ns/hier-db has no key 'url'"]
    world.run(60)
    assert world.status["phase"] == "StateMigration"
    assert world.state.actions == []
    assert world.condition("Stalled") == ("True", "SecretNotFound")
    stalled = next(c for c in world.status["conditions"] if c["type"] == "Stalled")
    assert "Secret ns/hier-db has no key 'url'" in stalled["message"]
    world.state.secret_problems = []
    world.step(1)
    assert [a.verb for a in world.state.actions] == ["create"]
    assert world.condition("Stalled")[0] == "False"


def test_a_failed_job_stalls_rolls_traffic_back_and_a_retry_starts_a_new_attempt() -> None:
    world = at_state_migration(spec())
    world.state.finish(
        1, failed=True, failure="FailedIndexes: Job has failed indexes", failed_indexes="1",
        last_error="error: cannot connect to PostgreSQL at postgresql://u:***@db/h9",
    )  # fmt: skip
    world.step(1)
    assert world.condition("Stalled") == ("True", "StateMigrationFailed")
    message = world.status["halt"]["message"]
    assert "failed index 1" in message and "cannot connect to PostgreSQL" in message
    assert world.route.weight == 0  # Immediate: all traffic back on flat in one write
    assert world.writes[-1] == (0, 0)
    assert state(world)["state"] == "Failed"
    world.run(30)
    assert world.route.weight == 0 and len(world.state.actions) == 1  # held: a person decides
    world.annotations["migration.hal9.ai/retry"] = "dba"
    world.run(120)
    assert [(a.verb, a.attempt) for a in world.state.actions] == [("create", 1), ("create", 2)]
    history = [h["reason"] for h in world.status["history"]]
    assert "StateMigrationRetried" in history and "Retried" in history


def test_partial_rollback_of_state_stops_the_job_and_holds_the_weight() -> None:
    raw = spec(rollback={"strategy": "Partial", "partial": {"components": ["state"]}})
    world = at_state_migration(raw)
    world.state.report = report(10, verified=False)
    world.edit(targetPhase="Canary")  # the spec is reverted while the Job runs
    world.run(5)
    assert [a.verb for a in world.state.actions] == ["create", "suspend"]
    assert world.route.weight == 25  # routing is not a named component: it stays
    assert state(world)["state"] == "Stopped"
    world.edit(targetPhase="RampUp")  # forward again: the same attempt resumes
    world.run(5)
    assert [(a.verb, a.attempt) for a in world.state.actions][-1] == ("resume", 1)


def test_partial_rollback_without_state_leaves_the_job_running() -> None:
    raw = spec(rollback={"strategy": "Partial", "partial": {"components": ["routing"]}})
    world = at_state_migration(raw)
    world.edit(targetPhase="Canary")
    world.run(5)
    assert [a.verb for a in world.state.actions] == ["create"]


def test_abort_stops_the_job_whatever_the_strategy() -> None:
    raw = spec(rollback={"strategy": "Partial", "partial": {"components": ["routing"]}})
    world = at_state_migration(raw)
    world.annotations["migration.hal9.ai/abort"] = "sre"
    world.run(3)
    assert [a.verb for a in world.state.actions] == ["create", "suspend"]
    assert world.route.weight == 0


@pytest.mark.parametrize("max_failed", [0, 2])
def test_failed_rows_beyond_the_limit_fail_the_gate_and_are_listed(max_failed: int) -> None:
    world = at_state_migration(spec(stateMigration={**STATE, "maxFailedRows": max_failed}))
    world.state.report = report(97, failed=3)
    world.state.finish(1, complete=True)
    world.step(1)
    assert world.condition("Stalled") == ("True", "StateMigrationFailed")
    message = world.status["halt"]["message"]
    assert f"3 rows failed validation, more than maxFailedRows {max_failed}" in message
    assert "id-0 (integrity: weights differ)" in message
    assert state(world)["firstFailures"][0] == {
        "id": "id-0",
        "validator": "integrity",
        "reason": "weights differ",
    }
    assert state(world)["failed"] == 3


def test_raising_max_failed_rows_lets_the_next_attempt_pass() -> None:
    raw = spec(
        stateMigration={**STATE, "maxFailedRows": 0},
        rollback={"strategy": "Partial", "partial": {"components": ["state"]}},
    )
    world = at_state_migration(raw)
    world.state.report = report(97, failed=3)
    world.state.finish(1, complete=True)
    world.step(1)
    assert world.condition("Stalled") == ("True", "StateMigrationFailed")
    assert world.route.weight == 25  # Partial without routing: the weight holds
    world.edit(stateMigration={**STATE, "maxFailedRows": 3})  # the DBA accepts the three rows
    world.run(3)
    # A new spec ends the stop; a new attempt re-verifies (and re-attempts the failed rows) first.
    assert [(a.verb, a.attempt) for a in world.state.actions] == [("create", 1), ("create", 2)]
    world.state.finish(2, complete=True)
    world.run(20)
    assert world.status["phase"] == "RampUp"


def test_a_long_run_that_keeps_moving_is_not_stalled_by_the_progress_deadline() -> None:
    world = at_state_migration(spec(progressDeadline="10s"))
    for migrated in range(0, 100, 4):  # 25 passes, 2 s apart: 50 s of a moving run
        world.state.report = report(migrated, verified=False)
        world.step(2)
        assert world.condition("Stalled")[0] == "False", world.status.get("halt")
    world.run(12)  # then it stops moving: the deadline applies
    assert world.condition("Stalled") == ("True", "ProgressDeadlineExceeded")


def test_a_workers_error_that_arrives_after_the_failure_joins_the_stalled_message() -> None:
    world = at_state_migration(spec())
    world.state.finish(1, failed=True, failure="MaxFailedIndexesExceeded: too many", failed_indexes="0")
    world.step(1)
    assert world.condition("Stalled") == ("True", "StateMigrationFailed")
    stalled = next(c["message"] for c in world.status["conditions"] if c["type"] == "Stalled")
    assert "last error" not in stalled
    world.state.finish(
        1,
        failed=True,
        failure="MaxFailedIndexesExceeded: too many",
        failed_indexes="0",
        last_error="error: cannot connect to PostgreSQL at db:1",
    )
    world.step(1)
    world.step(1)
    stalled = next(c["message"] for c in world.status["conditions"] if c["type"] == "Stalled")
    assert stalled.count("last error: error: cannot connect to PostgreSQL at db:1") == 1
