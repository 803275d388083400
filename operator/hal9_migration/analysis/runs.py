"""Analysis runs: when one is due, asking the backend, and what a run leaves in status (pure, but for
``measure``, which calls the provider it is given).

A run measures the position the route object holds; the gate only trusts a run made at the current
step (``stepSince`` is that step's start), so a pass never advances on numbers from the step before.
Runs happen every ``analysis.interval`` while hierarchical receives traffic or a mirror.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..clock import later, parse_time, timestamp_ms
from ..models import (
    AnalysisStatus,
    CheckResult,
    Hal9MigrationSpec,
    Phase,
    PositionRecord,
    parse_duration,
    shadow_proxied,
)
from .base import MetricProvider, Sample
from .signals import NamedQuery, queries
from .verdicts import Evaluation, Measured, evaluate


@dataclass(frozen=True)
class Request:
    """The queries of a run that is due, and the step it measures."""

    phase: Phase
    step_since: str
    queries: list[NamedQuery]


@dataclass(frozen=True)
class Run:
    """A run as the edge made it."""

    time: datetime
    request: Request
    measured: list[Measured]


@dataclass(frozen=True)
class Notice:
    """A check whose verdict changed since the last run (for an Event)."""

    warning: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Merged:
    status: AnalysisStatus
    evaluation: Evaluation
    notices: list[Notice] = field(default_factory=list)


def configured(spec: Hal9MigrationSpec) -> bool:
    return spec.analysis.prometheus is not None or bool(spec.analysis.metrics)


def due(
    spec: Hal9MigrationSpec,
    last: AnalysisStatus | None,
    record: PositionRecord | None,
    now: datetime,
    namespace: str,
    migration: str,
) -> Request | None:
    """The run to make now, or None: no analysis, nothing reaches hierarchical, or not yet time."""
    if not configured(spec) or record is None or record.phase is None:
        return None
    if record.weight == 0 and record.mirror == 0:
        return None
    next_at = next_run(spec, last)
    if next_at is not None and now < next_at:
        return None
    proxy = record.phase is Phase.SHADOW and shadow_proxied(spec)
    return Request(record.phase, record.since, queries(spec, namespace, migration, proxy))


def next_run(spec: Hal9MigrationSpec, last: AnalysisStatus | None) -> datetime | None:
    """When the next run falls due (None: at once)."""
    then = parse_time(last.last_run_time) if last is not None and last.last_run_time else None
    return later(then, parse_duration(spec.analysis.interval)) if then is not None else None


def measure(provider: MetricProvider, request: Request, now: datetime) -> Run:
    """Ask each query in turn; once the backend is unreachable, the rest share that reason unasked."""
    measured: list[Measured] = []
    down: Sample | None = None
    for named in request.queries:
        sample = down or provider.query(named.query)
        if sample.unreachable:
            down = sample
        measured.append(Measured(named.name, named.query, sample))
    return Run(now, request, measured)


def merge(spec: Hal9MigrationSpec, last: AnalysisStatus | None, run: Run, at: str) -> Merged:
    """The status after ``run``: its checks, the trigger count, and since when the step has passed."""
    evaluation = evaluate(spec, run.request.phase, run.measured)
    before = last or AnalysisStatus()
    same_step = before.step_since == run.request.step_since
    failures = before.consecutive_failures
    if evaluation.trigger_state == "firing":
        failures += 1
    elif evaluation.trigger_state == "clear":
        failures = 0
    when = timestamp_ms(run.time)
    passing_since = None
    if evaluation.verdict == "Pass":
        passing_since = before.passing_since if same_step and before.verdict == "Pass" else when
    status = AnalysisStatus(
        last_run_time=when,
        at=at,
        step_since=run.request.step_since,
        verdict=evaluation.verdict,
        message=evaluation.message,
        checks=evaluation.checks,
        triggers=evaluation.triggers,
        consecutive_failures=failures,
        passing_since=passing_since,
        notes=evaluation.notes,
    )
    return Merged(status, evaluation, _notices(before.checks, evaluation.checks))


def _notices(before: list[CheckResult], after: list[CheckResult]) -> list[Notice]:
    """One notice per check whose verdict changed (a check seen for the first time counts when it
    does not pass), so Events mark each turn without repeating every interval."""
    previous = {c.name: c.verdict for c in before}
    out = []
    for check in after:
        old = previous.get(check.name)
        if check.verdict == old or (old is None and check.verdict == "Pass"):
            continue
        value = "" if check.value is None else f" = {check.value:.4g}"
        out.append(
            Notice(
                warning=check.verdict != "Pass",
                reason=f"Analysis{check.verdict}",
                message=f"{check.name}{value}: {check.verdict} ({check.reason})"
                + (f", was {old}" if old else ""),
            )
        )
    return out
