"""The edge of the state migration: observe its Secrets, Job and the workers' report; act on the Job.

Everything here is input gathering and output for ``plan.decide``; the decisions are in the pure
``plan``/``staterun``. The database URLs are read from their Secrets into memory to open the target
read-only (the workers' progress, verifications and failures live there, written in the same
transactions as the rows); they are passed to nothing but the store, and every message that could
carry one is scrubbed first.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from . import kube, statejob
from .models import Hal9MigrationSpec, StateMigrationStatus
from .plan import StateAction
from .statemigration.stores import base as stores
from .statemigration.stores.factory import open_store
from .staterun import FAILURE_SAMPLE, JobView, StateObservation

# A kubelet's termination message is the log's tail; the last line is the worker's error.
_FINISHED = ("Complete", "SuccessCriteriaMet")
_FAILED = ("Failed", "FailureTarget")


def observe(
    namespace: str, name: str, uid: str, spec: Hal9MigrationSpec, status: StateMigrationStatus | None
) -> StateObservation:
    attempt = status.attempt if status else 1
    urls: list[str] = []
    problems: list[str] = []
    target_url = None
    wanted = spec.state_migration
    if wanted is not None:
        for ref in (wanted.source.url_secret_ref, wanted.target.url_secret_ref):
            value, problem = kube.read_secret_value(namespace, ref.name, ref.key)
            if value is None:
                problems.append(problem)
            else:
                urls.append(value)
        if not problems:
            target_url = urls[1]
    job = _job_view(namespace, statejob.job_name(name, uid, attempt), urls)
    report, error = (None, "") if target_url is None else _read_report(target_url)
    return StateObservation(job=job, secret_problems=problems, report=report, report_error=error)


def act(namespace: str, name: str, uid: str, spec: Hal9MigrationSpec, action: StateAction) -> str:
    """Carry out ``action``; returns why the API server refused it ("" when done)."""
    job = statejob.job_name(name, uid, action.attempt)
    try:
        if action.verb == "create":
            assert spec.state_migration is not None  # plan only asks to create with a spec
            manifest = statejob.build_job(
                namespace=namespace,
                migration=name,
                uid=uid,
                spec=spec.state_migration,
                attempt=action.attempt,
                shards=action.shards,
            )
            kube.create_job(manifest)
        else:
            kube.suspend_job(namespace, job, suspend=action.verb == "suspend")
    except ApiException as error:
        if error.status in (400, 403, 422):
            return f"the API server refused to {action.verb} Job {namespace}/{job}: {kube.refusal(error)}"
        raise
    return ""


def _job_view(namespace: str, job_name: str, urls: list[str]) -> JobView | None:
    job = kube.read_job(namespace, job_name)
    if job is None:
        return None
    spec, status = job.get("spec") or {}, job.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    failed = next((conditions[t] for t in _FAILED if t in conditions), None)
    last_error = ""
    if status.get("failed"):
        last_error = _last_error(kube.job_pods(namespace, job_name), urls)
    return JobView(
        name=job_name,
        suspended=bool(spec.get("suspend")),
        complete=any(t in conditions for t in _FINISHED),
        failed=failed is not None,
        failure=f"{failed.get('reason', '')}: {failed.get('message', '')}" if failed else "",
        active=int(status.get("active") or 0),
        failed_indexes=str(status.get("failedIndexes") or ""),
        last_error=last_error,
    )


def _last_error(pods: list[dict[str, Any]], urls: list[str]) -> str:
    """The last line of the newest failed worker's termination message."""
    newest = ("", "")
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            for state in (container.get("state"), container.get("lastState")):
                terminated = (state or {}).get("terminated") or {}
                if terminated.get("exitCode", 0) == 0:
                    continue
                text = (
                    _error_line(terminated.get("message") or "") or f"exit code {terminated.get('exitCode')}"
                )
                finished = str(terminated.get("finishedAt") or "")
                if finished >= newest[0]:
                    newest = (finished, text)
    return _scrub(newest[1][:500], urls)


def _error_line(log_tail: str) -> str:
    """The worker's last ``error:`` line with its continuation lines (a driver's message can span
    several), else the last line."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    return " ".join(lines[starts[-1] :]) if starts else (lines[-1] if lines else "")


def _read_report(url: str) -> tuple[stores.RunReport | None, str]:
    try:
        store = open_store(url)
        try:
            return store.read_report(FAILURE_SAMPLE), ""
        finally:
            store.close()
    except Exception as error:  # a store's failure is a status message, never a crashed pass
        return None, _scrub(str(error), [url])


def _scrub(text: str, urls: list[str]) -> str:
    for url in urls:
        text = stores.scrub(text, url)
    return text
