"""What the operator makes of a state-migration run (pure): the Job and the workers' own reports.

The edge reads three things and hands them over as a ``StateObservation``: the Secrets (only whether
each names an existing key: their values never leave the edge), the Job of the current attempt, and
the report the workers keep in the target database (progress per shard, NoDataLoss verifications,
failed rows). From them this module writes ``status.stateMigration`` and answers the phase's gate:
Pass only when every index succeeded, every shard's NoDataLoss verification passed, and no more rows
failed validation than ``maxFailedRows`` allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import FailedRowStatus, StateMigration, StateMigrationStatus
from .statemigration.stores.base import RunReport

FAILURE_SAMPLE = 5


@dataclass(frozen=True)
class JobView:
    """The current attempt's Job as the edge found it."""

    name: str
    suspended: bool = False
    complete: bool = False
    failed: bool = False
    failure: str = ""  # the Failed condition's reason and message
    active: int = 0
    failed_indexes: str = ""  # status.failedIndexes, e.g. "1,3-4"
    last_error: str = ""  # the last line of a failed worker's termination message


@dataclass(frozen=True)
class StateObservation:
    job: JobView | None = None  # None: the current attempt has no Job
    secret_problems: list[str] = field(default_factory=list)  # "Secret hal9/db has no key 'url'"
    report: RunReport | None = None  # None: the workers have not started a run in the target yet
    report_error: str = ""  # why the target could not be read (never a password)
    job_problem: str = ""  # why the API server refused the Job (a rejected manifest, missing RBAC)


@dataclass(frozen=True)
class Assessment:
    verdict: str  # Pass | Fail | Inconclusive (gates.Verdict's values)
    reason: str
    status: StateMigrationStatus


def assess(
    spec: StateMigration,
    current: StateMigrationStatus,
    seen: StateObservation,
) -> Assessment:
    """The gate's verdict and the status, from one observation of the run."""
    status = current.model_copy(update=_figures(seen.report))
    job = seen.job
    if job is not None:
        if current.job_name == job.name and current.percent is not None and status.percent is not None:
            # Within one Job rows are only ever added: the estimate above must not make it step back.
            status.percent = max(status.percent, current.percent)
        status.job_name = job.name
    if job is None:
        return _result("Inconclusive", "the state-migration Job is being created", status, "Pending")
    if job.failed:
        where = f"; failed index {job.failed_indexes}" if job.failed_indexes else ""
        error = f"; last error: {job.last_error}" if job.last_error else ""
        status.failed_indexes = job.failed_indexes or None
        status.last_error = job.last_error or None
        return _result("Fail", f"Job {job.name} failed: {job.failure}{where}{error}", status, "Failed")
    if job.suspended:
        return _result("Inconclusive", f"Job {job.name} is suspended", status, "Stopped")
    if not job.complete:
        return _result("Inconclusive", _running(job, status, seen.report_error), status, "Running")
    if seen.report is None:
        why = seen.report_error or "it holds no migration run"
        return _result(
            "Inconclusive", f"Job {job.name} completed, but the target's report cannot be read: {why}", status
        )
    return _verdict(spec, job, seen.report, status)


def _verdict(
    spec: StateMigration, job: JobView, report: RunReport, status: StateMigrationStatus
) -> Assessment:
    scopes = [f"shard {i}/{report.shard_count}" for i in range(report.shard_count)]
    missing = [scope for scope in scopes if scope not in report.verified]
    failing = [scope for scope in scopes if report.verified.get(scope) is False]
    if missing or failing:
        problems = "; ".join(f"{s}: {report.problems.get(s, 'counts or checksums differ')}" for s in failing)
        detail = problems or f"no verification recorded for {', '.join(missing)}"
        status.validation = f"NoDataLoss failed: {detail}"
        return _result("Fail", f"Job {job.name} completed but {status.validation}", status, "Failed")
    total = sum(s.total for s in report.shards)
    status.validation = (
        f"NoDataLoss passed: {total} source rows = {status.migrated} migrated + {report.failed_rows} "
        f"failed, checksums equal in all {report.shard_count} shards"
    )
    if report.failed_rows > spec.max_failed_rows:
        first = ", ".join(f"{f.neuron_id} ({f.validator}: {f.reason})" for f in report.first_failures)
        reason = (
            f"{report.failed_rows} rows failed validation, more than maxFailedRows {spec.max_failed_rows}; "
            f"first: {first}. Fix them in the source and retry (the workers re-attempt failed rows), "
            "or raise maxFailedRows"
        )
        return _result("Fail", reason, status, "Failed")
    return _result("Pass", status.validation, status, "Verified")


def _running(job: JobView, status: StateMigrationStatus, report_error: str) -> str:
    if report_error:
        return f"Job {job.name} is running; its progress cannot be read: {report_error}"
    if status.total is None:
        return f"Job {job.name} is running ({job.active} active pods); no worker has reported yet"
    eta = f", ETA {status.eta_seconds}s" if status.eta_seconds is not None else ""
    return (
        f"Job {job.name} is migrating: {status.percent}% ({status.migrated} migrated, {status.failed} "
        f"failed of {status.total}) at {status.rate:.0f} rows/s{eta}"
    )


def _figures(report: RunReport | None) -> dict[str, object]:
    if report is None:
        return {}
    total = sum(s.total for s in report.shards)
    migrated = sum(s.migrated for s in report.shards)
    failed = sum(s.failed for s in report.shards)
    rate = sum(s.rate for s in report.shards if s.state == "Running")
    remaining = max(total - migrated - failed, 0)
    return {
        "shards": report.shard_count,
        "total": total,
        "migrated": migrated,
        "failed": failed,
        "percent": _percent(migrated + failed, total, len(report.shards), report.shard_count),
        "rate": round(rate, 1),
        "eta_seconds": round(remaining / rate) if rate > 0 and remaining else None,
        "last_checkpoint": max((s.updated_at for s in report.shards), default=None),
        "first_failures": [
            FailedRowStatus(id=f.neuron_id, validator=f.validator, reason=f.reason)
            for f in report.first_failures
        ],
    }


def _percent(done: int, total: int, reported: int, shard_count: int) -> int:
    """Floored, so 100 % means every row handled. Until every shard has reported its total, the
    others are taken to hold as many rows as the average reported one (shards split the random ids
    evenly) and the figure stays below 100: one fast shard alone must not read as nearly done."""
    if reported < shard_count:
        estimated = total * shard_count / reported if reported else 0
        return min(int(100 * done // estimated), 99) if estimated else 0
    return (100 * done) // total if total else 100


def _result(verdict: str, reason: str, status: StateMigrationStatus, state: str | None = None) -> Assessment:
    if state is not None:
        status.state = state
    status.message = reason
    return Assessment(verdict, reason, status)
