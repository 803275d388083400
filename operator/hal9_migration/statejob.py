"""The state-migration Job as a manifest (pure): name, labels, and ``build_job``.

One Indexed Job per attempt runs ``hal9-migration migrate-state``, one shard of the neuron ids per
index (``$JOB_COMPLETION_INDEX``, set by Kubernetes' Job controller). Its name is derived from the
migration's uid and the attempt number, never from a counter in the operator's memory, so a restarted
operator finds the Job it created instead of making a second one. The database URLs reach the worker
only as ``secretKeyRef`` environment variables: never in args, never read by this module.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .models import GROUP, KIND, VERSION, StateMigration, parse_duration

LABEL_MIGRATION = f"{GROUP}/migration"
LABEL_ATTEMPT = f"{GROUP}/state-attempt"
COMPONENT = "state-migration"
CONTAINER = "worker"
SOURCE_ENV = "HAL9_SOURCE_URL"  # read by `migrate-state` (statemigration.commands)
TARGET_ENV = "HAL9_TARGET_URL"
# An Indexed Job's pods get the hostname "<job>-<index>", a DNS label of at most 63 characters, and
# the Job controller labels pods with the Job's name (a label value, also 63). 52 leaves room for
# "-63" and for kube-controller-manager's own suffixes on generated pod names.
MAX_NAME = 52
_SUFFIX = "-state-{attempt}-{digest}"


def job_name(migration: str, uid: str, attempt: int) -> str:
    """A valid, stable Job name: readable prefix of the migration's name, attempt, uid digest."""
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    suffix = _SUFFIX.format(attempt=attempt, digest=digest)
    # Migration names are DNS subdomains (dots allowed); a pod hostname is one DNS label.
    prefix = re.sub(r"[^a-z0-9-]", "-", migration.lower())[: MAX_NAME - len(suffix)].strip("-")
    return f"{prefix or 'h9m'}{suffix}"


def owner_reference(migration: str, uid: str) -> dict[str, Any]:
    """The Hal9Migration as the controlling owner of an object it makes: deleting it deletes them."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": migration,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def migration_label(migration: str) -> str:
    """The migration's name as a label value (63 characters at most, else a digest of it)."""
    if len(migration) <= 63 and "." not in migration:
        return migration
    return "h9m-" + hashlib.sha256(migration.encode()).hexdigest()[:40]


def build_job(
    *,
    namespace: str,
    migration: str,
    uid: str,
    spec: StateMigration,
    attempt: int,
    shards: int,
) -> dict[str, Any]:
    """The Indexed Job for one attempt. ``shards`` is the run's sharding (fixed once a run started)."""
    name = job_name(migration, uid, attempt)
    labels = {
        "app.kubernetes.io/name": "hal9-migration",
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": "hal9-migration-operator",
        LABEL_MIGRATION: migration_label(migration),
        LABEL_ATTEMPT: str(attempt),
    }
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": shards,
        "parallelism": shards,
        "backoffLimitPerIndex": spec.backoff_limit_per_index,
        # One shard out of retries fails the whole Job at once: the other shards stop (their
        # checkpoints stay), and the migration says which shard and why instead of running on.
        "maxFailedIndexes": 0,
        "template": {
            "metadata": {"labels": labels},
            "spec": _pod_spec(spec, shards),
        },
    }
    if spec.active_deadline is not None:
        seconds = max(1, int(parse_duration(spec.active_deadline).total_seconds()))
        job_spec["activeDeadlineSeconds"] = seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(migration, uid)],
        },
        "spec": job_spec,
    }


def converters(spec: StateMigration) -> int:
    """Converter processes per worker: the whole CPUs of its CPU limit (else of its request), at
    least 1. Explicit, not the worker's own count of the node's CPUs: each one costs ~80 MiB, which
    the memory limit must hold (1 Gi by default, with the default 250m: one, in the worker itself)."""
    cpu = spec.resources.limits.cpu or spec.resources.requests.cpu or "1"
    return max(1, int(cpu_cores(cpu)))


def cpu_cores(quantity: str) -> float:
    """A CPU quantity (``2``, ``1.5``, ``500m``, ``1e3m``...) as cores; the schema's grammar has
    checked it."""
    suffixes = {
        "n": 1e-9,
        "u": 1e-6,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "P": 1e15,
        "E": 1e18,
    }
    binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
    if quantity[-2:] in binary:
        return float(quantity[:-2]) * binary[quantity[-2:]]
    if quantity[-1] in suffixes and not quantity[-1].isdigit():
        return float(quantity[:-1]) * suffixes[quantity[-1]]
    return float(quantity)


def _pod_spec(spec: StateMigration, shards: int) -> dict[str, Any]:
    return {
        "restartPolicy": "Never",  # retries are the Job's (backoffLimitPerIndex), per shard
        "automountServiceAccountToken": False,  # the worker never talks to the API server
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": spec.image,
                "command": ["hal9-migration", "migrate-state"],
                "args": [
                    "--shards",
                    str(shards),
                    "--batch-size",
                    str(spec.batch_size),
                    "--converters",
                    str(converters(spec)),
                ],
                "env": [
                    _secret_env(SOURCE_ENV, spec.source.url_secret_ref.name, spec.source.url_secret_ref.key),
                    _secret_env(TARGET_ENV, spec.target.url_secret_ref.name, spec.target.url_secret_ref.key),
                ],
                "resources": spec.resources.model_dump(exclude_none=True),
                # The last lines of a failed worker's log become its termination message: that is
                # where the operator reads "the worker's last error line" without reading logs.
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def _secret_env(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
