"""The operator's only conversation with the API server (official client, typed models).

Handlers call these functions; the pure core never sees a client. Errors other than "not found"
propagate, so kopf retries the pass instead of the operator deciding on a half-read world.
"""

from __future__ import annotations

from collections.abc import Iterable

import kubernetes
from kubernetes.client.exceptions import ApiException

# (connect, read) seconds: a stalled connection must fail the pass (kopf retries it), never hang a
# handler thread, which would also hold up deletion (kopf stops timers before removing its finalizer).
REQUEST_TIMEOUT = (5, 30)


def load_config() -> None:
    """In a pod: the ServiceAccount. Elsewhere: ``$KUBECONFIG`` or ``~/.kube/config``."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


def missing(namespace: str, references: Iterable[tuple[str, str]]) -> list[str]:
    """``"Kind namespace/name"`` for each referenced object that does not exist."""
    core = kubernetes.client.CoreV1Api()
    apps = kubernetes.client.AppsV1Api()
    readers = {"Service": core.read_namespaced_service, "Deployment": apps.read_namespaced_deployment}
    absent = []
    for kind, name in references:
        try:
            readers[kind](name, namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as error:
            if error.status != 404:
                raise
            absent.append(f"{kind} {namespace}/{name}")
    return absent
