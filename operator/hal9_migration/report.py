"""What a pass says: conditions, history entries and Events (pure).

Conditions follow kstatus: ``Reconciling`` while the migration moves or waits for something that will
come by itself, ``Stalled`` when only a person can help, ``Ready`` when the declared target is held.
Every move or control is a history entry and an Event; a condition's new state is an Event too unless
a history entry of this pass already announced the same reason.

A rehearsal (``spec.rehearsal``) says the same things with the same reasons, so its history reads as
the real migration's would, but every message says plainly that nothing was applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from . import conditions
from .conditions import Desired
from .models import (
    AnalysisStatus,
    Condition,
    ControlsStatus,
    Hal9MigrationSpec,
    Hal9MigrationStatus,
    Halt,
    HistoryEntry,
)
from .phases import Position

HISTORY_LIMIT = 100
REHEARSAL = "Rehearsal (not applied): "  # opens every message of a rehearsal's pass


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


class Journal:
    """History entries and Events produced by one pass (a rehearsal's say so in each message)."""

    def __init__(self, now: datetime, *, rehearsal: bool = False) -> None:
        self.now = now
        self.prefix = REHEARSAL if rehearsal else ""
        self.entries: list[HistoryEntry] = []
        self.events: list[Event] = []

    def record(
        self,
        reason: str,
        message: str,
        *,
        before: Position | None = None,
        after: Position | None = None,
        actor: str = "operator",
        warning: bool = False,
        time: str | None = None,
    ) -> None:
        message = self.prefix + message
        self.entries.append(
            HistoryEntry(
                time=time or conditions.timestamp(self.now),
                from_phase=before.phase if before else None,
                to_phase=after.phase if after else None,
                weight=after.weight if after else None,
                reason=reason,
                message=message,
                actor=actor,
            )
        )
        by = "" if actor == "operator" else f" (by {actor})"
        self.events.append(Event("Warning" if warning else "Normal", reason, message + by))

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """An Event without a history entry: for news that repeats (an analysis verdict turning)."""
        self.events.append(Event("Warning" if warning else "Normal", reason, self.prefix + message))


@dataclass
class Outcome:
    """Where the pass leaves the migration, for conditions and the next wake-up."""

    state: Literal["moving", "waiting", "target", "paused", "halted"]
    reason: str
    message: str
    due: datetime | None = None


@dataclass(frozen=True)
class Report:
    status: dict[str, Any]  # the full new status, camelCase
    changed: bool  # False when the status already said exactly this
    events: list[Event]


def finish(
    current: Hal9MigrationStatus,
    generation: int,
    now: datetime,
    journal: Journal,
    wanted: list[Desired],
    paused: Desired,
    previous: Hal9MigrationStatus | None = None,
) -> Report:
    """Merge conditions and history into the status; Events for what changed."""
    before = previous or current
    new_conditions = conditions.apply(before.conditions, [*wanted, paused], generation, now)
    history = [*before.history, *journal.entries][-HISTORY_LIMIT:]
    status = dump_status(
        current.model_copy(
            update={"observed_generation": generation, "conditions": new_conditions, "history": history}
        )
    )
    # A condition's new state is not announced again when this pass's entries said it already.
    announced = {e.reason for e in journal.events} | {e.message for e in journal.events}
    events = list(journal.events)
    for condition in conditions.transitions(before.conditions, new_conditions):
        event = event_for(condition)
        if event is not None and event.reason not in announced and event.message not in announced:
            events.append(event)
    return Report(status=status, changed=status != dump_status(before), events=events)


def dump_status(status: Hal9MigrationStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


NO_ANALYSIS = Desired("Degraded", "False", "NoAnalysis", "No health analysis has run")


def degraded_condition(analysis: AnalysisStatus | None, halt: Halt | None, failure_limit: int) -> Desired:
    """``Degraded``: what the last analysis run says about hierarchical's health."""
    if halt is not None and halt.spec_hash is not None:
        return Desired("Degraded", "True", halt.reason, halt.message)
    if analysis is None or analysis.last_run_time is None:
        return NO_ANALYSIS
    firing = [t for t in analysis.triggers if t.verdict == "Fail"]
    if firing and analysis.consecutive_failures:
        listed = "; ".join(f"{t.name} {t.reason}" for t in firing)
        return Desired(
            "Degraded",
            "True",
            "RollbackTriggerFiring",
            f"{listed}: {analysis.consecutive_failures} of {failure_limit} runs in a row before a rollback",
        )
    if analysis.verdict == "Fail":
        return Desired("Degraded", "True", "AnalysisFailing", analysis.message or "")
    if analysis.verdict == "Inconclusive":
        return Desired("Degraded", "Unknown", "AnalysisInconclusive", analysis.message or "")
    return Desired("Degraded", "False", "AnalysisPassing", analysis.message or "every check passed")


def outcome_conditions(
    outcome: Outcome, degraded: Desired = NO_ANALYSIS, *, rehearsal: bool = False
) -> list[Desired]:
    reason, message = outcome.reason, outcome.message
    if rehearsal and outcome.state == "target":
        message = f"Rehearsal reached the target: {message}; the route object was not changed"
    elif rehearsal:
        message = REHEARSAL + message
    if outcome.state == "halted":
        return [*stalled(reason, message)[:-1], degraded]
    if outcome.state == "target":
        return [
            Desired("Ready", "True", reason, message),
            Desired("Reconciling", "False", reason, ""),
            Desired("Stalled", "False", reason, ""),
            degraded,
        ]
    if outcome.state == "paused":
        return [
            Desired("Ready", "False", reason, message),
            Desired("Reconciling", "False", reason, message),
            Desired("Stalled", "False", reason, ""),
            degraded,
        ]
    return [
        Desired("Ready", "False", reason, message),
        Desired("Reconciling", "True", reason, message),
        Desired("Stalled", "False", reason, ""),
        degraded,
    ]


def stalled(reason: str, message: str) -> list[Desired]:
    return [
        Desired("Ready", "False", reason, message),
        Desired("Reconciling", "False", reason, "Cannot proceed without a change to the spec or cluster"),
        Desired("Stalled", "True", reason, message),
        NO_ANALYSIS,
    ]


def paused_condition(spec: Hal9MigrationSpec, state: ControlsStatus | None) -> Desired:
    if spec.paused:
        return Desired("Paused", "True", "PausedBySpec", "spec.paused is true: no step forward will be taken")
    if state is not None and state.paused_by:
        return Desired(
            "Paused", "True", "PausedByAnnotation", f"Paused by {state.paused_by} with the pause annotation"
        )
    return Desired("Paused", "False", "NotPaused", "")


def event_for(condition: Condition) -> Event | None:
    """The Event announcing a condition's new state, for the states worth announcing."""
    if condition.type == "Stalled" and condition.status == "True":
        return Event("Warning", condition.reason, condition.message)
    if condition.type == "Ready" and condition.status == "True":
        return Event("Normal", condition.reason, condition.message)
    if condition.type == "Paused" and condition.status == "True":
        return Event("Normal", "Paused", condition.message)
    return None
