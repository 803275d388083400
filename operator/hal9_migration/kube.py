"""The operator's conversation with the API server (official client, typed models).

Handlers call these functions; the pure core never sees a client. Errors other than the ones named
here propagate, so kopf retries the pass instead of the operator deciding on a half-read world.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from .models import GROUP, PLURAL, VERSION
from .traffic import Router

# (connect, read) seconds: a stalled connection must fail the pass (kopf retries it), never hang a
# handler thread, which would also hold up deletion (kopf stops timers before removing its finalizer).
REQUEST_TIMEOUT = (5, 30)
# The name the API server records the operator's writes under (managedFields): what a GitOps tool is
# told to leave alone (Argo CD's managedFieldsManagers, docs/argocd.md). Without it, the client's
# default, "OpenAPI-Generator", is shared by every Python client.
FIELD_MANAGER = "hal9-migration-operator"
# How many passes (each a few blocking API calls) may run at once; the handlers size their thread
# pool to this. Beyond it, on 2 cores, more threads only queue on the CPU (measured: make bench-operator).
PASS_THREADS = 16


def refusal(error: ApiException) -> str:
    """The API server's own words for a refused request (its Status message), else the HTTP reason."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)


class Conflict(Exception):
    """The object changed between our read and our write; the pass must be retried on fresh data."""


def load_config() -> None:
    """In a pod: the ServiceAccount. Elsewhere: ``$KUBECONFIG`` or ``~/.kube/config``."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    # The client imports each API class on first use, 0.5 s for the big ones and seconds on a busy
    # machine: load them now, not in the first pass (which, after a takeover, is the one that counts).
    for api in ("AppsV1Api", "BatchV1Api", "CoreV1Api", "CustomObjectsApi", "DiscoveryV1Api"):
        getattr(kubernetes.client, api)


@functools.cache
def _api() -> kubernetes.client.ApiClient:
    """One client (and connection pool) for the process, created after ``load_config``; as many
    pooled connections as passes may run at once, so no pass waits for a connection."""
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = PASS_THREADS
    return kubernetes.client.ApiClient(configuration)


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


def replace_status(obj: dict[str, Any], status: dict[str, Any]) -> None:
    """Replace the status of ``obj`` (as read) with ``status``, only if the object is still at the
    resourceVersion read (optimistic concurrency).

    A replace, not a merge patch: a field the pass dropped (a halt that ended, a pause that was
    resumed) must disappear, and a merge patch leaves every field it does not mention in place.
    """
    metadata = obj["metadata"]
    body = {**obj, "status": status}
    try:
        kubernetes.client.CustomObjectsApi(_api()).replace_namespaced_custom_object_status(
            GROUP,
            VERSION,
            metadata["namespace"],
            PLURAL,
            metadata["name"],
            body,
            field_manager=FIELD_MANAGER,
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict(f"{metadata['namespace']}/{metadata['name']} changed since it was read") from error
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


# --- route objects ---------------------------------------------------------------------------------


def read_route(router: Router) -> dict[str, Any] | None:
    """The route object the router drives, or None if it does not exist."""
    try:
        obj = kubernetes.client.CustomObjectsApi(_api()).get_namespaced_custom_object(
            router.group,
            router.version,
            router.backends.namespace,
            router.plural,
            router.name,
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return cast(dict[str, Any], obj)


def replace_route(router: Router, obj: dict[str, Any]) -> None:
    """Replace the route object; ``obj`` carries the resourceVersion read, so a concurrent edit
    makes this fail with Conflict (and the pass is retried on fresh data) instead of being lost."""
    try:
        kubernetes.client.CustomObjectsApi(_api()).replace_namespaced_custom_object(
            router.group,
            router.version,
            router.backends.namespace,
            router.plural,
            router.name,
            obj,
            field_manager=FIELD_MANAGER,
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict(
                f"{router.kind} {router.backends.namespace}/{router.name} changed since it was read"
            ) from error
        raise


def migration_exists(namespace: str, name: str) -> bool:
    return read_migration(namespace, name) is not None


def remove_annotations(namespace: str, name: str, annotations: dict[str, str]) -> None:
    """Remove each annotation if it still has the value acted on (a JSON-patch test guards each, so
    one set again meanwhile with a new value stays for the next pass)."""
    api = kubernetes.client.CustomObjectsApi(_api())
    for key, value in annotations.items():
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        body = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
        try:
            api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type="application/json-patch+json",
                field_manager=FIELD_MANAGER,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as error:
            if error.status not in (404, 409, 422):  # gone, or the value changed: leave it
                raise


# --- the state-migration Job -------------------------------------------------------------------------


def read_secret_value(namespace: str, name: str, key: str) -> tuple[str | None, str]:
    """A Secret key's value (decoded), or None and why not. The value is a database URL with its
    password: callers hand it to a store and nothing else; it never reaches a log, Event or status."""
    try:
        secret = kubernetes.client.CoreV1Api(_api()).read_namespaced_secret(
            name, namespace, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status == 404:
            return None, f"Secret {namespace}/{name} not found"
        if error.status == 403:
            return None, f"Secret {namespace}/{name} may not be read by the operator; check its RBAC"
        raise
    data = secret.data or {}
    if key not in data:
        return None, f"Secret {namespace}/{name} has no key {key!r}"
    try:
        return base64.b64decode(data[key]).decode(), ""
    except (ValueError, UnicodeDecodeError):
        return None, f"Secret {namespace}/{name} key {key!r} is not UTF-8 text"


def read_job(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        job = kubernetes.client.BatchV1Api(_api()).read_namespaced_job(
            name, namespace, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return cast(dict[str, Any], _api().sanitize_for_serialization(job))  # type: ignore[no-untyped-call]


def create_job(manifest: dict[str, Any]) -> None:
    """Create the Job; one that exists already (a pass repeated after a lost status write) is fine."""
    namespace = manifest["metadata"]["namespace"]
    try:
        kubernetes.client.BatchV1Api(_api()).create_namespaced_job(
            namespace,
            manifest,  # type: ignore[arg-type]  # plain dicts are sent as they are
            field_manager=FIELD_MANAGER,
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status != 409:
            raise


def suspend_job(namespace: str, name: str, suspend: bool) -> None:
    """Suspend (its pods are deleted; the Job and what the workers committed stay) or resume."""
    try:
        kubernetes.client.BatchV1Api(_api()).patch_namespaced_job(
            name,
            namespace,
            {"spec": {"suspend": suspend}},
            field_manager=FIELD_MANAGER,
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status != 404:
            raise


def job_pods(namespace: str, job: str) -> list[dict[str, Any]]:
    pods = kubernetes.client.CoreV1Api(_api()).list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job}", _request_timeout=REQUEST_TIMEOUT
    )
    return cast(list[dict[str, Any]], _api().sanitize_for_serialization(pods.items))  # type: ignore[no-untyped-call]


# --- the shadow proxy's Deployment and Service ------------------------------------------------------

_KINDS = {"Deployment": "deployment", "Service": "service"}


def _typed(kind: str) -> tuple[Any, str]:
    """The typed API and the method suffix for one of the proxy's kinds."""
    api = kubernetes.client.AppsV1Api(_api()) if kind == "Deployment" else kubernetes.client.CoreV1Api(_api())
    return api, f"namespaced_{_KINDS[kind]}"


def read_owned(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """A Deployment or Service as stored, or None when there is none."""
    api, suffix = _typed(kind)
    try:
        obj = getattr(api, f"read_{suffix}")(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return cast(dict[str, Any], _api().sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]


class Foreign(Exception):
    """An object of the wanted name exists and belongs to someone else: it is never overwritten."""


def apply_owned(manifest: dict[str, Any], hash_annotation: str) -> bool:
    """Create the object, or replace it when its ``hash_annotation`` differs from the manifest's (a
    spec change, or a hand edit that changed the annotation); returns whether anything was written.
    Raises Foreign when the live object is not owned by the manifest's owner."""
    kind, meta = manifest["kind"], manifest["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    api, suffix = _typed(kind)
    live = read_owned(kind, namespace, name)
    if live is None:
        try:
            getattr(api, f"create_{suffix}")(
                namespace, manifest, field_manager=FIELD_MANAGER, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status != 409:  # made by a pass that did not see it yet: the next pass compares
                raise
        return True
    owners = {ref["uid"] for ref in meta.get("ownerReferences", [])}
    if not owners & {ref.get("uid") for ref in live["metadata"].get("ownerReferences") or []}:
        raise Foreign(f"{kind} {namespace}/{name} exists and is not this migration's; rename or remove it")
    wanted = meta.get("annotations", {}).get(hash_annotation)
    if (live["metadata"].get("annotations") or {}).get(hash_annotation) == wanted:
        return False
    update = {**manifest, "metadata": {**meta, "resourceVersion": live["metadata"]["resourceVersion"]}}
    if kind == "Service":  # allocated once, immutable: carried over
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key in live.get("spec", {}):
                update["spec"] = {**update["spec"], key: live["spec"][key]}
    try:
        getattr(api, f"replace_{suffix}")(
            name, namespace, update, field_manager=FIELD_MANAGER, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict(f"{kind} {namespace}/{name} changed while the operator updated it") from error
        raise
    return True


def delete_owned(kind: str, namespace: str, name: str) -> bool:
    """Delete the object (foreground for a Deployment, so its pods go with it); False if it was gone."""
    api, suffix = _typed(kind)
    try:
        getattr(api, f"delete_{suffix}")(
            name, namespace, propagation_policy="Foreground", _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def ready_endpoints(namespace: str, service: str) -> int:
    """How many ready endpoints the Service's EndpointSlices list (what a data plane sends to)."""
    slices = kubernetes.client.DiscoveryV1Api(_api()).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}", _request_timeout=REQUEST_TIMEOUT
    )
    return sum(
        1
        for item in slices.items
        for endpoint in item.endpoints or []
        if endpoint.conditions is None or endpoint.conditions.ready is not False
    )
