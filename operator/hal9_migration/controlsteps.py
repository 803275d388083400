"""The control annotations in a pass (pure): pause, resume, abort, retry and promote, each acted on
once per value, whatever the number of passes that see it (its removal may be lost).

Functions over the pass's fields (``Fields``), called by ``passes``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from . import conditions
from .controls import Control, Verb
from .halts import ABORTED
from .models import (
    AnalysisStatus,
    ControlsStatus,
    GateStatus,
    Hal9MigrationSpec,
    Halt,
    RollbackStatus,
)
from .report import Journal


class Fields(Protocol):
    """What these steps read and write of the pass."""

    spec: Hal9MigrationSpec
    generation: int
    now: datetime
    journal: Journal
    present: list[Control]  # the control annotations on the object now
    consume: list[Control]  # the annotations the edge removes after the pass
    controls: ControlsStatus
    promote: Control | None
    aborted_by: str
    halt: Halt | None
    gate: GateStatus | None
    rollback: RollbackStatus | None
    analysis: AnalysisStatus | None


def halt_now(p: Fields, reason: str, message: str) -> Halt:
    """A stop of this generation: a retry or a new spec ends it."""
    return Halt(reason=reason, message=message, generation=p.generation, time=conditions.timestamp(p.now))


def apply_controls(p: Fields) -> None:
    """Act on each control annotation not acted on yet; all of them are consumed (removed)."""
    present_verbs = {c.verb.value for c in p.present}
    for verb in [v for v in p.controls.consumed if v not in present_verbs]:
        del p.controls.consumed[verb]  # seen removed: a new annotation with this value acts again
    for control in p.present:
        p.consume.append(control)
        if p.controls.consumed.get(control.verb.value) == control.value:
            continue  # acted on already; only its removal was lost
        p.controls.consumed[control.verb.value] = control.value
        _act(p, control)


def _act(p: Fields, control: Control) -> None:
    actor, journal = control.actor, p.journal
    if control.verb is Verb.PAUSE:
        p.controls.paused_by = actor
        journal.record("Paused", "Paused by annotation: no step will be taken until resume", actor=actor)
    elif control.verb is Verb.RESUME:
        p.controls.paused_by = None
        still = " (spec.paused still holds it)" if p.spec.paused else ""
        journal.record("Resumed", f"Resumed by annotation{still}", actor=actor)
    elif control.verb is Verb.ABORT:
        p.aborted_by = actor
        p.halt = halt_now(
            p, ABORTED, f"Aborted by {actor}: all traffic to flat; retry or change the spec to go on"
        )
        journal.record(
            ABORTED,
            "Abort requested: all traffic goes back to flat and the migration holds",
            actor=actor,
            warning=True,
        )
    elif control.verb is Verb.RETRY:
        if p.rollback is not None and p.rollback.retried_by is None:
            p.rollback = p.rollback.model_copy(update={"retried_by": actor})
            if p.analysis is not None:
                p.analysis = p.analysis.model_copy(update={"consecutive_failures": 0})
        if p.halt is not None:
            journal.record("Retried", f"Retry ends the {p.halt.reason} stop", actor=actor)
        else:
            journal.record("Retried", "Retry: nothing was stopped; the deadline clock restarts", actor=actor)
        p.halt = None
        p.gate = None  # the deadline counts again from now
    elif control.verb is Verb.PROMOTE:
        p.promote = control
