"""What one analysis run's numbers mean (pure): gate checks, rollback triggers and the health score.

Gates and triggers are different things (DESIGN §2). A gate check that does not pass *holds* the
step; a trigger that fires, for ``failureLimit`` runs in a row, *reverts*. So a canary at a 0.01 error
rate waits and says why, and one at 0.08 goes back.

A value that could not be read is Inconclusive, never a pass. With ``inconclusive: Pause`` a run with
an Inconclusive check holds the step and leaves the trigger count as it was; with ``Fail`` it counts
as a failure for the gate and for the triggers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .. import health
from ..models import CheckResult, Hal9MigrationSpec, HealthStatus, Inconclusive, Phase, shadow_proxied
from .base import Sample
from .signals import CPU, ERROR_RATE, FLAT_P99, MEMORY, OUTPUT_PARITY, P99

LATENCY_RATIO = "latency-ratio"
HEALTH_SCORE = "health-score"
PARITY_NOTE = (
    "output-parity is not measured: a mesh mirror discards hierarchical's answers, so nothing is "
    "compared (phases.shadow.mode: Proxy compares them)"
)
REHEARSAL_PARITY_NOTE = (
    "output-parity is not measured in a rehearsal: no shadow proxy runs and the route object is not "
    "changed, so nothing is compared"
)

TriggerState = Literal["firing", "clear", "unknown"]


@dataclass(frozen=True)
class Measured:
    name: str
    query: str
    sample: Sample


@dataclass(frozen=True)
class Bound:
    """A limit on one value: a gate passes inside it, a trigger fires outside it."""

    name: str
    low: float | None
    high: float | None
    source: str  # the spec field the limit comes from
    strict: bool = False  # "below" (<) rather than "at most" (<=)

    def _above(self, value: float) -> bool:
        return self.high is not None and (value >= self.high if self.strict else value > self.high)

    def inside(self, value: float) -> bool:
        return not self._above(value) and not (self.low is not None and value < self.low)

    def describe(self, value: float) -> str:
        """``0.08 > 0.05 (rollback.maxErrorRate)``: the value against the limit and its source."""
        v, below = _number(value), "<" if self.strict else "<="
        if self._above(value):
            assert self.high is not None
            return f"{v} {'>=' if self.strict else '>'} {_number(self.high)} ({self.source})"
        if self.low is not None and value < self.low:
            return f"{v} < {_number(self.low)} ({self.source})"
        if self.low is not None and self.high is not None:
            return f"{_number(self.low)} <= {v} {below} {_number(self.high)} ({self.source})"
        if self.high is not None:
            return f"{v} {below} {_number(self.high)} ({self.source})"
        assert self.low is not None
        return f"{v} >= {_number(self.low)} ({self.source})"


@dataclass(frozen=True)
class Evaluation:
    checks: list[CheckResult]
    verdict: Literal["Pass", "Fail", "Inconclusive"]  # the gate checks together, the policy applied
    message: str
    triggers: list[CheckResult]
    trigger_state: TriggerState
    health: HealthStatus
    notes: list[str] = field(default_factory=list)


def _number(value: float) -> str:
    return f"{value:.4g}"


def gate_bounds(spec: Hal9MigrationSpec, phase: Phase | None) -> list[Bound]:
    """HAL9's gate for leaving ``phase`` (DESIGN §2), then the user's checks (every phase)."""
    p = spec.phases
    error = Bound(ERROR_RATE, None, p.canary.max_error_rate, "phases.canary.maxErrorRate", strict=True)
    own: list[Bound] = []
    if phase is Phase.SHADOW:
        latency = Bound(LATENCY_RATIO, None, p.shadow.max_latency_ratio, "phases.shadow.maxLatencyRatio")
        if shadow_proxied(spec):  # DESIGN's Shadow gate: parity and latency
            own = [
                Bound(OUTPUT_PARITY, p.shadow.min_output_parity, None, "phases.shadow.minOutputParity"),
                latency,
            ]
        else:
            # Parity is not measured behind a mesh mirror (nor in a rehearsal, which runs no proxy):
            # the error rate on the mirrored requests stands in for it (never start a canary on a
            # failing system).
            own = [error, latency]
    elif phase in (Phase.CANARY, Phase.STATE_MIGRATION):
        own = [error, Bound(P99, None, p.canary.max_p99_ms, "phases.canary.maxP99Ms", strict=True)]
    elif phase is Phase.RAMP_UP:
        own = [
            error,
            Bound(CPU, None, p.ramp_up.max_cpu_percent, "phases.rampUp.maxCpuPercent", strict=True),
            Bound(MEMORY, None, p.ramp_up.max_memory_percent, "phases.rampUp.maxMemoryPercent", strict=True),
            Bound(LATENCY_RATIO, None, p.ramp_up.max_latency_ratio, "phases.rampUp.maxLatencyRatio"),
        ]
    elif phase is Phase.FULL:
        own = [Bound(HEALTH_SCORE, p.full.min_health_score, None, "phases.full.minHealthScore")]
    users = [Bound(m.name, m.min, m.max, f"analysis.metrics[{m.name}]") for m in spec.analysis.metrics]
    return own + users


def trigger_bounds(spec: Hal9MigrationSpec, phase: Phase | None) -> list[Bound]:
    """The automatic rollback triggers (DESIGN §2): outside these, a run counts as failed."""
    p, r = spec.phases, spec.rollback
    if phase is Phase.SHADOW:
        latency = Bound(LATENCY_RATIO, None, p.shadow.max_latency_ratio, "phases.shadow.maxLatencyRatio")
    elif phase in (Phase.RAMP_UP, Phase.FULL):
        latency = Bound(LATENCY_RATIO, None, p.ramp_up.max_latency_ratio, "phases.rampUp.maxLatencyRatio")
    else:
        latency = Bound(P99, None, p.canary.max_p99_ms, "phases.canary.maxP99Ms")
    return [
        Bound(ERROR_RATE, None, r.max_error_rate, "rollback.maxErrorRate"),
        latency,
        Bound(HEALTH_SCORE, r.min_health_score, None, "rollback.minHealthScore"),
    ]


def evaluate(spec: Hal9MigrationSpec, phase: Phase | None, measured: list[Measured]) -> Evaluation:
    samples = {m.name: m.sample for m in measured}
    queries = {m.name: m.query for m in measured}
    health_now = _derive(samples, queries)
    checks = [_check(bound, samples, queries) for bound in gate_bounds(spec, phase)]
    triggers = [_check(bound, samples, queries) for bound in trigger_bounds(spec, phase)]
    fail_on_unknown = spec.analysis.inconclusive is Inconclusive.FAIL
    verdict, message = _gate(checks, fail_on_unknown)
    if any(t.verdict == "Fail" for t in triggers):
        state: TriggerState = "firing"
    elif any(t.verdict == "Inconclusive" for t in triggers):
        state = "firing" if fail_on_unknown else "unknown"
    else:
        state = "clear"
    unmeasured = phase is Phase.SHADOW and not shadow_proxied(spec)
    notes = [REHEARSAL_PARITY_NOTE if spec.rehearsal else PARITY_NOTE] if unmeasured else []
    return Evaluation(checks, verdict, message, triggers, state, health_now, notes)


def _derive(samples: dict[str, Sample], queries: dict[str, str]) -> HealthStatus:
    """Adds the latency ratio and the health score to the measured signals; returns the health."""
    p99, flat = samples.get(P99), samples.get(FLAT_P99)
    if p99 is None or flat is None:
        samples[LATENCY_RATIO] = Sample(None, "p99 latencies were not measured")
    elif p99.value is None or flat.value is None:
        missing = P99 if p99.value is None else FLAT_P99
        samples[LATENCY_RATIO] = Sample(None, f"{missing}: {(p99 if p99.value is None else flat).reason}")
    elif flat.value <= 0:
        samples[LATENCY_RATIO] = Sample(None, "flat's p99 is 0: no ratio")
    else:
        samples[LATENCY_RATIO] = Sample(p99.value / flat.value)
    queries[LATENCY_RATIO] = f"({queries.get(P99, '')}) / ({queries.get(FLAT_P99, '')})"
    score = _health(samples)
    samples[HEALTH_SCORE] = (
        Sample(score.score) if score.score is not None else Sample(None, score.reason or "")
    )
    queries[HEALTH_SCORE] = ""
    return score


def _health(samples: dict[str, Sample]) -> HealthStatus:
    def value(name: str) -> float | None:
        sample = samples.get(name)
        return sample.value if sample is not None else None

    result = health.score(value(ERROR_RATE), value(CPU), value(MEMORY), value(OUTPUT_PARITY))
    return HealthStatus(
        score=result.score,
        error_rate=value(ERROR_RATE),
        cpu_percent=value(CPU),
        memory_percent=value(MEMORY),
        parity=value(OUTPUT_PARITY),
        reason=result.reason or None,
    )


def _check(bound: Bound, samples: dict[str, Sample], queries: dict[str, str]) -> CheckResult:
    sample = samples.get(bound.name) or Sample(None, "not measured")
    query = queries.get(bound.name, "")
    if sample.value is None:
        return CheckResult(name=bound.name, query=query, verdict="Inconclusive", reason=sample.reason)
    verdict = "Pass" if bound.inside(sample.value) else "Fail"
    return CheckResult(
        name=bound.name,
        query=query,
        value=round(sample.value, 6),
        verdict=verdict,
        reason=bound.describe(sample.value),
    )


def _gate(
    checks: list[CheckResult], fail_on_unknown: bool
) -> tuple[Literal["Pass", "Fail", "Inconclusive"], str]:
    failed = [c for c in checks if c.verdict == "Fail"]
    unknown = [c for c in checks if c.verdict == "Inconclusive"]
    if failed:
        return "Fail", "; ".join(f"{c.name} {c.reason}" for c in failed)
    if unknown:
        listed = "; ".join(f"{c.name}: {c.reason}" for c in unknown)
        if fail_on_unknown:
            return "Fail", f"Inconclusive counts as a failure (analysis.inconclusive: Fail): {listed}"
        return "Inconclusive", f"{listed} (Inconclusive holds the step: analysis.inconclusive: Pause)"
    return "Pass", "every check passed" if checks else "no check applies to this phase"
