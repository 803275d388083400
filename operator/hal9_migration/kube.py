"""The operator's conversation with the API server (official client, typed models).

Handlers call these functions; the pure core never sees a client. Errors other than the ones named
here propagate, so kopf retries the pass instead of the operator deciding on a half-read world.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from .models import GROUP, PLURAL, VERSION

# (connect, read) seconds: a stalled connection must fail the pass (kopf retries it), never hang a
# handler thread, which would also hold up deletion (kopf stops timers before removing its finalizer).
REQUEST_TIMEOUT = (5, 30)


class Conflict(Exception):
    """The object changed between our read and our write; the pass must be retried on fresh data."""


def load_config() -> None:
    """In a pod: the ServiceAccount. Elsewhere: ``$KUBECONFIG`` or ``~/.kube/config``."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


@functools.cache
def _api() -> kubernetes.client.ApiClient:
    """One client (and connection pool) for the process, created after ``load_config``."""
    return kubernetes.client.ApiClient()


def read_migration(namespace: str, name: str) -> dict[str, Any] | None:
    """The Hal9Migration as stored now, or None if it is gone."""
    try:
        obj = kubernetes.client.CustomObjectsApi(_api()).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return cast(dict[str, Any], obj)


def patch_status(namespace: str, name: str, resource_version: str, status: dict[str, Any]) -> None:
    """Write ``status`` only if the object is still at ``resource_version`` (optimistic concurrency)."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": status}
    try:
        kubernetes.client.CustomObjectsApi(_api()).patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            _content_type="application/merge-patch+json",
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict(f"{namespace}/{name} changed since it was read") from error
        raise


@dataclass
class References:
    missing: list[str] = field(default_factory=list)  # "Kind namespace/name" that do not exist
    forbidden: list[str] = field(default_factory=list)  # ... that the operator may not read


def check_references(namespace: str, references: Iterable[tuple[str, str]]) -> References:
    """Which of the referenced Services and Deployments are missing or unreadable."""
    core = kubernetes.client.CoreV1Api(_api())
    apps = kubernetes.client.AppsV1Api(_api())
    readers = {"Service": core.read_namespaced_service, "Deployment": apps.read_namespaced_deployment}
    found = References()
    for kind, name in references:
        try:
            readers[kind](name, namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                found.missing.append(f"{kind} {namespace}/{name}")
            elif error.status == 403:
                found.forbidden.append(f"{kind} {namespace}/{name}")
            else:
                raise
    return found
