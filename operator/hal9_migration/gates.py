"""Gates: what must hold before the migration leaves a step (pure).

A gate answers Pass, Fail or Inconclusive with a reason. Gates hold a step; they never move traffic
back (that is a rollback trigger, a different thing). A gate that has not passed within
``progressDeadline`` of the step falling due stalls the migration, naming the gate and its reason.

Until metric analysis exists, a step of a migration without analysis passes on time alone, and says
so; one that asks for analysis waits, because nothing may pretend to have checked what it has not.
The StateMigration phase passes on the state migration's own evidence: its Job and NoDataLoss.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .models import Hal9MigrationSpec, Phase, StateMigrationStatus
from .phases import Position
from .staterun import StateObservation, assess


class Verdict(StrEnum):
    PASS = "Pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class GateResult:
    gate: str
    verdict: Verdict
    reason: str

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


@dataclass(frozen=True)
class Evidence:
    """What the edge observed for the gates in this pass (None: not observed)."""

    state: StateObservation | None = None


class Gate(Protocol):
    name: str

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        """Whether the migration may leave ``position`` now."""


class TimeOnly:
    """No analysis is configured: the step's hold time is the whole gate."""

    name = "time"

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        return GateResult(self.name, Verdict.PASS, "no analysis is configured: the step passes on time alone")


class AnalysisNotAvailable:
    """The spec asks for metric checks that this operator version cannot run: hold, and say so."""

    name = "analysis"

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        return GateResult(
            self.name,
            Verdict.INCONCLUSIVE,
            "spec.analysis asks for metric checks, which this operator version does not run yet; "
            "remove spec.analysis.prometheus and spec.analysis.metrics to advance on time alone",
        )


class StateMigrated:
    """Phase 3 is left only when every shard succeeded and NoDataLoss passed (see ``staterun``)."""

    name = "state-migration"

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        if spec.state_migration is None:  # refused at admission for targets from StateMigration on
            return GateResult(self.name, Verdict.FAIL, "spec.stateMigration is not set")
        if evidence.state is None:
            return GateResult(
                self.name, Verdict.INCONCLUSIVE, "the state migration has not been observed yet"
            )
        assessment = assess(spec.state_migration, StateMigrationStatus(), evidence.state)
        return GateResult(self.name, Verdict(assessment.verdict), assessment.reason)


def gate_for(spec: Hal9MigrationSpec, position: Position) -> Gate:
    """The gate guarding the way out of ``position``."""
    if position.phase is Phase.STATE_MIGRATION:
        return StateMigrated()
    if spec.analysis.prometheus is not None or spec.analysis.metrics:
        return AnalysisNotAvailable()
    return TimeOnly()
