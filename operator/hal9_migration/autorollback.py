"""Automatic rollback (pure): analysis runs taken into status, the rollback when the triggers have
fired for ``failureLimit`` runs in a row, and no fight with GitOps afterwards.

Rollback reverts the spec the operator acts on to the last good snapshot: the declared spec is never
rewritten (a GitOps tool would put it back at once, the fight this avoids). The failed spec's hash is
remembered; while it is declared, the migration holds at the safe position (Stalled and Degraded,
reason RolledBack), whatever its generation, until a spec with another hash or a ``retry``.

Functions over the pass's fields (``Fields``), called by ``plan``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from . import analysis, conditions, phases, rollback
from .halts import ABORTED, AUTO_ROLLED_BACK, STATE_FAILED
from .models import (
    AnalysisStatus,
    Hal9MigrationSpec,
    Halt,
    HealthStatus,
    Phase,
    PositionRecord,
    RollbackStatus,
    RollbackStrategy,
    Snapshot,
)
from .phases import START, Position
from .report import Journal

AUTOMATIC_ROLLBACK = "AutomaticRollback"  # the history entry of the moment it was decided
FAILED_SPEC_REAPPLIED = "FailedSpecReapplied"
ROLLBACK_ESCALATED = "RollbackEscalated"


class Fields(Protocol):
    """What these steps read and write of the pass."""

    spec: Hal9MigrationSpec
    spec_hash: str
    generation: int
    now: datetime
    journal: Journal
    frozen: bool
    halt: Halt | None
    snapshots: list[Snapshot]
    run_made: analysis.Run | None
    analysis: AnalysisStatus | None
    health: HealthStatus | None
    rollback: RollbackStatus | None


def _held_off(p: Fields, message: str) -> Halt:
    """The stop that holds the failed spec off: only a spec with another hash (or retry) ends it."""
    return Halt(
        reason=AUTO_ROLLED_BACK,
        message=message,
        generation=p.generation,
        time=conditions.timestamp(p.now),
        spec_hash=p.spec_hash,
    )


def safe(last: RollbackStatus) -> Position:
    """Where the last automatic rollback went."""
    return Position(last.to_phase, last.to_step, last.to_weight, last.to_mirror)


def end_stale_halt(p: Fields) -> None:
    """A stop ends with a new spec: for an automatic rollback, one whose hash differs from the
    failed one (a GitOps tool re-applying the failed spec is not new, whatever its generation)."""
    halt = p.halt
    if halt is None:
        return
    if halt.spec_hash is not None:
        if halt.spec_hash != p.spec_hash:
            p.journal.record("HaltCleared", f"A new spec (hash {p.spec_hash}) ends the {halt.reason} stop")
            p.halt = None
        elif halt.generation != p.generation:
            p.journal.record(
                FAILED_SPEC_REAPPLIED,
                f"Generation {p.generation} declares the spec that failed (hash {halt.spec_hash}) "
                "again: holding at the safe position; change the spec or retry",
                warning=True,
            )
            p.halt = halt.model_copy(update={"generation": p.generation})
    elif halt.generation != p.generation:
        p.journal.record("HaltCleared", f"A new spec (generation {p.generation}) ends the {halt.reason} stop")
        p.halt = None


def hold_failed_spec(p: Fields) -> None:
    """After a new spec ended an automatic rollback's stop, the failed spec coming back (git revert of
    the fix, a self-heal) stops again at the same safe position: never re-advance into a failure."""
    last = p.rollback
    if p.halt is not None or last is None or last.retried_by is not None:
        return
    if last.failed_spec_hash != p.spec_hash:
        return
    message = (
        f"The spec that was rolled back at {last.time} (hash {last.failed_spec_hash}) is declared again: "
        f"holding at {safe(last).label()}; change the spec or retry to go on"
    )
    p.halt = _held_off(p, message)
    p.journal.record(FAILED_SPEC_REAPPLIED, message, warning=True)


def analyse(p: Fields, record: PositionRecord | None) -> None:
    """Take in the analysis run the edge made (if it measured the step the route holds), and roll
    back when the triggers have fired for ``failureLimit`` runs in a row."""
    run = p.run_made
    if run is None or record is None or run.request.step_since != record.since:
        return
    merged = analysis.merge(p.spec, p.analysis, run, phases.at(record).label())
    p.analysis = merged.status
    baseline = p.health.baseline if p.health else None
    p.health = merged.evaluation.health.model_copy(update={"baseline": baseline})
    for notice in merged.notices:
        p.journal.event(notice.reason, notice.message, warning=notice.warning)
    if merged.status.consecutive_failures >= p.spec.analysis.failure_limit:
        roll_back(p, record, merged.evaluation)


def roll_back(p: Fields, record: PositionRecord, evaluation: analysis.Evaluation) -> None:
    """Revert to the last good snapshot: the spec the operator acts on becomes the one that held
    there, until the declared spec changes or a retry. The declared spec is never rewritten: a
    GitOps tool would put it back at once, which is the fight this avoids."""
    here = phases.at(record)
    if here.weight == 0 or not p.spec.rollback.automatic:
        return  # nothing users see rides on hierarchical, or a person decides (Degraded says so)
    if p.halt is not None and p.halt.reason in (ABORTED, STATE_FAILED):
        return  # already going back to all-flat
    rolling_back = p.halt is not None and p.halt.reason == AUTO_ROLLED_BACK and p.rollback is not None
    if rolling_back and p.rollback is not None and here.rank > safe(p.rollback).rank:
        return  # still walking back to the safe position: one rollback at a time
    # (At the safe position and still failing with users' traffic on it: back to an older snapshot.)
    firing = [t for t in evaluation.triggers if t.verdict != "Pass"]
    why = "; ".join(f"{t.name} {t.reason}" for t in firing)
    to = safe_position(p, here)
    runs = p.spec.analysis.failure_limit
    message = (
        f"Rolled back from {here.label()} to {to.label()}: {why} for {runs} analysis run(s) in a row; "
        f"the failed spec (hash {p.spec_hash}) is held off until the spec changes or a retry"
    )
    p.rollback = RollbackStatus(
        time=conditions.timestamp(p.now),
        reason=",".join(t.name for t in firing),
        message=message,
        failed_spec_hash=p.spec_hash,
        failed_generation=p.generation,
        to_phase=to.phase,
        to_step=to.step,
        to_weight=to.weight,
        to_mirror=to.mirror,
        strategy=p.spec.rollback.strategy.value,
    )
    p.halt = _held_off(p, message)
    if p.analysis is not None:
        p.analysis = p.analysis.model_copy(update={"consecutive_failures": 0})
    if p.health is not None:
        p.health = p.health.model_copy(update={"baseline": p.health.score})
    p.journal.record(AUTOMATIC_ROLLBACK, message, warning=True)


def safe_position(p: Fields, here: Position) -> Position:
    """Where the newest snapshot with less hierarchical traffic than now stood (START if none)."""
    for snapshot in reversed(p.snapshots):
        if snapshot.weight is None or snapshot.weight >= here.weight:
            continue
        if snapshot.phase is None:
            return START
        path = phases.path(p.spec.model_copy(update={"target_phase": Phase.FULL, "traffic_split": None}))
        found = path[phases.locate(path, (snapshot.phase.number, snapshot.weight))]
        if found.phase is snapshot.phase:
            return found
    return START


def health_falling(p: Fields, record: PositionRecord) -> bool:
    """Whether health fell on during a Gradual walk back (then it turns Immediate, once, said)."""
    if p.spec.rollback.strategy is not RollbackStrategy.GRADUAL or p.frozen:
        return False
    health = p.health or HealthStatus()
    walking = record.reason == rollback.ROLLING_BACK
    if not walking or health.baseline is None:
        # A walk starts here: the score now is what "falling" is measured from.
        p.health = health.model_copy(update={"baseline": health.score})
        return False
    falling = rollback.health_fell(health.baseline, health.score)
    if falling:
        p.journal.record(
            ROLLBACK_ESCALATED,
            f"Health fell from {health.baseline} to {health.score} during the Gradual walk back: "
            "the rest goes in one step (Immediate)",
            warning=True,
        )
        if p.rollback is not None and p.halt is not None and p.halt.reason == AUTO_ROLLED_BACK:
            p.rollback = p.rollback.model_copy(update={"escalated": True})
    return falling


def health_now(p: Fields, record: PositionRecord | None) -> HealthStatus | None:
    """The last run's health, without the walk-back baseline once no walk is under way."""
    if p.health is None:
        return None
    walking = record is not None and record.reason == rollback.ROLLING_BACK
    return p.health if walking else p.health.model_copy(update={"baseline": None})


def analysis_poll(p: Fields, record: PositionRecord | None) -> float | None:
    """Seconds until the next analysis run, while one will be made."""
    if not analysis.configured(p.spec) or record is None or (record.weight == 0 and record.mirror == 0):
        return None
    due = analysis.next_run(p.spec, p.analysis)
    return 0.0 if due is None else max(0.0, (due - p.now).total_seconds())
