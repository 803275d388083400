"""Gates: what must hold before the migration leaves a step (pure).

A gate answers Pass, Fail or Inconclusive with a reason. Gates hold a step; they never move traffic
back (that is a rollback trigger, a different thing). A gate that has not passed within
``progressDeadline`` of the step falling due stalls the migration, naming the gate and its reason.

A step of a migration without analysis passes on time alone, and says so. With analysis, the last
run made at this step decides (``analysis.verdicts``); RampUp also wants it passing for ``stableFor``.
The StateMigration phase passes on the state migration's own evidence (its Job and NoDataLoss), and
then on analysis too: traffic is held at the canary's weight while the Job runs, and may not go on
to RampUp while that traffic is unhealthy.

A rehearsal (``spec.rehearsal``) evaluates the same gates on the same metrics, except where the
evidence can never exist because it runs nothing: its StateMigration step has no Job to wait for
(``StateRehearsed`` says what would have run), and its Shadow runs no proxy, so it is gated as Mirror
mode's (``shadow_proxied``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from . import analysis
from .clock import later, parse_time
from .conditions import timestamp
from .models import (
    AnalysisStatus,
    Hal9MigrationSpec,
    Phase,
    StateMigrationStatus,
    parse_duration,
    shadow_proxied,
)
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
    analysis: AnalysisStatus | None = None  # after this pass's run, if one was made
    step_since: str | None = None  # when the current step began (the position record's ``since``)
    now: datetime | None = None
    shadow_routed: bool = False  # the route object sends flat's share through a ready shadow proxy


class Gate(Protocol):
    name: str

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        """Whether the migration may leave ``position`` now."""


class TimeOnly:
    """No analysis is configured: the step's hold time is the whole gate."""

    name = "time"

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        return GateResult(self.name, Verdict.PASS, "no analysis is configured: the step passes on time alone")


class AnalysisPassed:
    """The last analysis run made at this step passed every check (RampUp: for ``stableFor``)."""

    name = "analysis"

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        last = evidence.analysis
        if last is None or last.step_since is None or last.step_since != evidence.step_since:
            return GateResult(self.name, Verdict.INCONCLUSIVE, "no analysis run has measured this step yet")
        if last.verdict != Verdict.PASS.value:
            return GateResult(self.name, Verdict(last.verdict or "Inconclusive"), last.message or "")
        if position.phase is Phase.RAMP_UP and evidence.now is not None:
            since = parse_time(last.passing_since) or evidence.now
            stable_until = later(since, parse_duration(spec.phases.ramp_up.stable_for))
            if evidence.now < stable_until:
                return GateResult(
                    self.name,
                    Verdict.INCONCLUSIVE,
                    f"every check has passed since {last.passing_since}; phases.rampUp.stableFor "
                    f"{spec.phases.ramp_up.stable_for} is reached at {timestamp(stable_until)}",
                )
        return GateResult(self.name, Verdict.PASS, last.message or "every check passed")


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


class StateRehearsed:
    """A rehearsal creates no state-migration Job, so there is no run to wait for: the step passes,
    saying what would have run (analysis, when configured, still decides after it)."""

    name = "state-migration-rehearsal"

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        state = spec.state_migration
        if state is None:  # refused at admission for targets from StateMigration on
            return GateResult(self.name, Verdict.FAIL, "spec.stateMigration is not set")
        return GateResult(
            self.name,
            Verdict.PASS,
            f"the state-migration Job ({state.workers} workers, image {state.image}) would run here; "
            "not run in a rehearsal",
        )


class ShadowProxyRouted:
    """Shadow in Proxy mode compares answers only while traffic goes through the proxy: numbers from
    before it was routed, or from a proxy that has since gone, prove nothing now."""

    name = "shadow-proxy"

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        if evidence.shadow_routed:
            return GateResult(self.name, Verdict.PASS, "traffic goes through the shadow proxy")
        return GateResult(
            self.name,
            Verdict.INCONCLUSIVE,
            "flat's traffic does not go through the shadow proxy (see status.shadow), so nothing is compared",
        )


class Both:
    """Two gates in turn: the second is asked only once the first has passed."""

    def __init__(self, first: Gate, second: Gate) -> None:
        self.first, self.second = first, second
        self.name = first.name

    def check(self, spec: Hal9MigrationSpec, position: Position, evidence: Evidence) -> GateResult:
        result = self.first.check(spec, position, evidence)
        return self.second.check(spec, position, evidence) if result.passed else result


def gate_for(spec: Hal9MigrationSpec, position: Position) -> Gate:
    """The gate guarding the way out of ``position``."""
    metrics: Gate = AnalysisPassed() if analysis.configured(spec) else TimeOnly()
    if position.phase is Phase.SHADOW and shadow_proxied(spec):
        return Both(ShadowProxyRouted(), metrics)
    if position.phase is Phase.STATE_MIGRATION:
        state: Gate = StateRehearsed() if spec.rehearsal else StateMigrated()
        return Both(state, metrics) if isinstance(metrics, AnalysisPassed) else state
    return metrics
