"""The state migration's part of a pass: its Job per attempt, and ``status.stateMigration`` (pure).

Functions over the pass's fields (``Fields``), called by ``plan``: the Job of the current attempt is
created, resumed or suspended; a failed attempt whose stop ended gives way to a new one, which resumes
from the workers' checkpoints.
"""

from __future__ import annotations

from typing import Protocol

from . import phases, staterun
from .decision import StateAction
from .halts import ABORTED, STATE_FAILED
from .models import (
    Hal9MigrationSpec,
    Hal9MigrationStatus,
    Halt,
    Phase,
    PositionRecord,
    RollbackComponent,
    RollbackStrategy,
    StateMigrationStatus,
)
from .phases import Position
from .report import Journal
from .staterun import StateObservation

# While a state-migration Job runs, status follows the workers' reports at least this often.
STATE_POLL_SECONDS = 2.0


class Fields(Protocol):
    """What these steps read and write of the pass."""

    spec: Hal9MigrationSpec
    current: Hal9MigrationStatus
    halt: Halt | None
    journal: Journal
    frozen: bool
    state_seen: StateObservation | None
    state_status: StateMigrationStatus | None


def new_attempt_after_failure(p: Fields) -> None:
    """A failed attempt whose stop has ended (retry, a new spec) gives way to a new Job, which
    resumes from the checkpoints the workers committed."""
    status = p.state_status
    if status is None or status.state != "Failed" or p.halt is not None or p.spec.rehearsal:
        return
    p.state_seen = None  # what the edge saw is the failed attempt's Job
    if p.frozen:
        return  # the next pass starts it
    attempt = status.attempt + 1
    p.state_status = StateMigrationStatus(
        attempt=attempt,
        shards=status.shards,
        state="Pending",
        message=f"attempt {attempt} starts: a new Job resumes from the workers' checkpoints",
    )
    p.journal.record(
        "StateMigrationRetried",
        f"Attempt {attempt}: a new state-migration Job resumes from the workers' checkpoints "
        f"(attempt {status.attempt} failed: {status.message or 'see history'})",
    )


def state_progressed(p: Fields) -> bool:
    before, seen = p.current.state_migration, p.state_seen
    if seen is None or seen.report is None:
        return False
    done = sum(s.migrated + s.failed for s in seen.report.shards)
    return before is None or done > (before.migrated or 0) + (before.failed or 0)


def state_job(p: Fields, record: PositionRecord | None, target: Position) -> StateAction | None:
    """What the Job of the current attempt needs, and ``status.stateMigration`` from what was seen."""
    seen, wanted = p.state_seen, p.spec.state_migration
    if seen is None:
        return None
    status = p.state_status or StateMigrationStatus()
    if wanted is not None:
        status = staterun.assess(wanted, status, seen).status
    here, job = phases.at(record), seen.job
    shards = seen.report.shard_count if seen.report else status.shards or (wanted.workers if wanted else 1)
    status.shards = shards
    action = None
    wanted_now = phases.phase_number(target) >= Phase.STATE_MIGRATION.number
    if here.phase is Phase.STATE_MIGRATION and p.halt is None and wanted is not None and wanted_now:
        if job is None and not seen.secret_problems and not seen.job_problem:
            action = StateAction("create", status.attempt, shards)
            p.journal.record(
                "StateMigrationStarted",
                f"Attempt {status.attempt}: an Indexed Job of {shards} workers migrates the neuron state",
            )
        elif job is not None and job.suspended and not (job.complete or job.failed):
            action = StateAction("resume", status.attempt, shards)
            status.state = "Running"
            p.journal.record("StateMigrationResumed", f"Job {job.name} resumes from its checkpoints")
    elif (
        job is not None and not (job.complete or job.failed or job.suspended) and stops_state(p, here, target)
    ):
        action = StateAction("suspend", status.attempt, shards)
        status.state = "Stopped"
        p.journal.record(
            "StateMigrationStopped",
            f"Job {job.name} is suspended; migrated rows and checkpoints stay, and the source was "
            "never written",
            warning=True,
        )
    p.state_status = status
    return action


def add_late_error(p: Fields) -> None:
    """A worker's error can reach the pod's status after the Job is seen failed: the stop's message
    (what Stalled says) gains it when it arrives, so a person reads why without digging."""
    error = p.state_status.last_error if p.state_status is not None else None
    if p.halt is None or p.halt.reason != STATE_FAILED or not error or error in p.halt.message:
        return
    p.halt = p.halt.model_copy(update={"message": f"{p.halt.message}; last error: {error}"})


def stops_state(p: Fields, here: Position, target: Position) -> bool:
    """Whether the Job must stop: an abort always; a state failure or a walk back below phase 3
    when the rollback strategy covers the ``state`` component."""
    if p.halt is not None and p.halt.reason == ABORTED:
        return True
    walking_back = min(phases.phase_number(here), phases.phase_number(target)) < Phase.STATE_MIGRATION.number
    if not walking_back and (p.halt is None or p.halt.reason != STATE_FAILED):
        return False
    strategy = p.spec.rollback
    if strategy.strategy is RollbackStrategy.PARTIAL:
        return RollbackComponent.STATE in (strategy.partial.components if strategy.partial else [])
    return True


def state_poll(p: Fields, record: PositionRecord | None) -> float | None:
    """How soon to look at the state migration again: at once when phase 3 has not been observed
    (just entered, or a new attempt), every few seconds while its Job may be running; never in a
    rehearsal, which creates no Job and does not look at the real migration's."""
    if p.spec.rehearsal:
        return None
    in_phase = phases.at(record).phase is Phase.STATE_MIGRATION
    if in_phase and p.state_seen is None and p.halt is None:
        return 0.0
    status = p.state_status
    if status is not None and status.state in ("Pending", "Running") and (in_phase or status.job_name):
        return STATE_POLL_SECONDS
    return None


def observes_state(
    spec: Hal9MigrationSpec | str, status: Hal9MigrationStatus, memory: PositionRecord | None
) -> bool:
    """Whether the edge must observe the state migration for this pass: phase 3 is (or was, per the
    route object) where the migration stands, a Job of the current attempt may still be running, or
    its failure's error has not reached a pod's status yet (``add_late_error``). Never in a
    rehearsal: it neither creates a Job nor acts on the real migration's."""
    if isinstance(spec, str) or spec.rehearsal:
        return False
    if any(r is not None and r.phase is Phase.STATE_MIGRATION for r in (status.position, memory)):
        return True
    state = status.state_migration
    if state is None or state.job_name is None:
        return False
    failed_job = state.state == "Failed" and bool(state.failed_indexes) and not state.last_error
    halted = status.halt is not None and status.halt.reason == STATE_FAILED
    return state.state in ("Pending", "Running") or (failed_job and halted)
