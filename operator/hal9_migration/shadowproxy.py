"""The shadow proxy during Shadow in Proxy mode (pure): when it runs, when traffic goes through it, and
its Deployment and Service as manifests.

A mesh mirror throws hierarchical's answers away, so nothing can be compared. In Proxy mode the
operator runs ``hal9-migration shadow-proxy`` (the operator's own image) as a Deployment with a
Service, and the route object sends flat's share to that Service instead of flat's: the proxy
returns flat's answer unchanged and sends the same request to hierarchical, comparing the two. The
output-parity gate reads the proxy's metrics through Prometheus (``analysis.signals``).

The order of things keeps callers safe:

- The proxy is created when the migration is about to enter Shadow (or is in it), and the route
  object detours through it only while it has a ready endpoint; a proxy that is not ready (starting,
  crashed) means traffic goes straight to flat and the gate waits.
- Leaving Shadow (forwards, back, abort, rollback) writes the route object without the detour first;
  the proxy is deleted only once the route object is seen without it, on a later pass, and
  ``LINGER`` after the move: a data plane takes a moment to stop sending to it.
- The Deployment and Service are owned by the Hal9Migration: deleting it removes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from . import phases
from .models import (
    GROUP,
    Hal9MigrationSpec,
    Hal9MigrationStatus,
    Halt,
    Phase,
    PositionRecord,
    ShadowMode,
    ShadowStatus,
    parse_duration,
    shadow_proxied,
)
from .phases import START
from .statejob import owner_reference
from .traffic.base import Routing

COMPONENT = "shadow-proxy"
CONTAINER = "shadow-proxy"
LISTEN_PORT = 8480  # not 8080 or 9090: common ports a node-local process may hold
ADMIN_PORT = 8481
HASH_ANNOTATION = f"{GROUP}/manifest-hash"
LABEL_MIGRATION = f"{GROUP}/migration"
_MAX_NAME = 63  # a Service name is a DNS-1035 label
PROXY_POLL = 2.0  # seconds between looks while the proxy starts
MIN_READY_SECONDS = 3
LINGER = timedelta(seconds=10)  # the proxy outlives the route write that leaves it by this much

ProxyAction = Literal["apply", "delete"]


def proxy_name(migration: str) -> str:
    """The proxy's Deployment and Service name: ``shadow-<migration>``, a DNS-1035 label (a digest
    replaces the end of a long name, so two long names never share a proxy)."""
    name = "shadow-" + re.sub(r"[^a-z0-9-]", "-", migration.lower())
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(migration.encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9].rstrip('-')}-{digest}"


def in_use(spec: Hal9MigrationSpec) -> bool:
    """Whether this migration runs the proxy in Shadow: Proxy mode, and not a rehearsal."""
    return shadow_proxied(spec)


def shadow_routing(spec: Hal9MigrationSpec) -> Routing:
    """What Shadow asks of the router when the migration runs for real: no mesh mirror in Proxy mode
    (the proxy copies the requests), else ``mirrorPercent``. A rehearsal writes nothing, yet it must
    not walk on over a router that could never carry the real run."""
    proxied = spec.phases.shadow.mode is ShadowMode.PROXY
    return Routing(0, 0 if proxied else spec.phases.shadow.mirror_percent, tuple(spec.targeting))


def route_mirror(spec: Hal9MigrationSpec, position: phases.Position) -> int:
    """The mesh mirror the route object holds at ``position``: none in Proxy mode (the proxy copies
    requests to hierarchical itself, ``mirrorPercent`` of them), else the position's."""
    return 0 if in_use(spec) and position.phase is Phase.SHADOW else position.mirror


def observes(spec: Hal9MigrationSpec, status: Hal9MigrationStatus, routed_now: str | None) -> bool:
    """Whether a pass must look at the proxy: it is (or is about to be) in use, or still to be removed.
    Never in a rehearsal: it neither runs a proxy nor removes the real migration's."""
    if spec.rehearsal:
        return False
    phase = status.position.phase if status.position is not None else None
    return (
        status.shadow is not None
        or routed_now is not None
        or (in_use(spec) and phase in (None, Phase.SHADOW))
    )


def poll_seconds(proxy: ProxyPlan) -> float | None:
    """How soon to look again while the proxy is being made ready (None: nothing to wait for)."""
    waiting = proxy.status is not None and proxy.status.proxy is not None and not proxy.status.routed
    return PROXY_POLL if waiting else None


@dataclass(frozen=True)
class ProxyView:
    """The proxy as the edge found it."""

    exists: bool = False  # its Deployment or its Service exists
    ready: bool = False  # its Deployment is available and its Service has a ready endpoint
    problem: str = ""  # why it cannot be made (the API server's refusal, a Service without ports)


@dataclass(frozen=True)
class ProxyPlan:
    """What this pass wants of the proxy."""

    action: ProxyAction | None  # apply: create or update it; delete: remove it; None: leave it
    detour: str | None  # the Service the route object sends flat's share to (None: flat itself)
    status: ShadowStatus | None


def plan(
    spec: Hal9MigrationSpec,
    name: str,
    record: PositionRecord | None,
    halt: Halt | None,
    view: ProxyView | None,
    routed_now: str | None,
    now: datetime,
) -> ProxyPlan:
    """The proxy's part of a pass, for the position ``record`` the route object will hold.

    ``routed_now`` is the detour the route object holds now (before this pass's write)."""
    proxy = proxy_name(name)
    here = phases.at(record)
    starting = here == START and halt is None
    if not in_use(spec) or (here.phase is not Phase.SHADOW and not starting):
        # Left Shadow (or switched to Mirror): the proxy goes once no route object sends to it.
        if view is None or not view.exists:
            return ProxyPlan(None, None, None)
        removing = ShadowStatus(
            mode=spec.phases.shadow.mode.value,
            proxy=proxy,
            message=f"Removing the shadow proxy {proxy}: the route object no longer sends to it",
        )
        left = phases.taken_at(record) if record is not None else now
        gone = routed_now is None and now >= left + LINGER
        return ProxyPlan("delete" if gone else None, None, removing)
    seen = view or ProxyView()
    ready = seen.ready and not seen.problem
    detour = proxy if ready and here.phase is Phase.SHADOW else None
    if seen.problem:
        message = f"The shadow proxy cannot run: {seen.problem}; traffic goes straight to flat"
    elif not seen.exists:
        message = f"Creating the shadow proxy {proxy}"
    elif not ready:
        message = f"The shadow proxy {proxy} has no ready endpoint yet; traffic goes straight to flat"
    elif detour is None:
        message = f"The shadow proxy {proxy} is ready"
    else:
        message = f"Flat's traffic goes through the shadow proxy {proxy}, which compares the answers"
    status = ShadowStatus(
        mode=ShadowMode.PROXY.value, proxy=proxy, ready=ready, routed=detour is not None, message=message
    )
    return ProxyPlan("apply", detour, status)


# --- manifests ------------------------------------------------------------------------------------


def _labels(migration: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "hal9-migration",
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/instance": proxy_name(migration),
        "app.kubernetes.io/managed-by": "hal9-migration-operator",
    }


def _metadata(namespace: str, migration: str, uid: str) -> dict[str, Any]:
    return {
        "name": proxy_name(migration),
        "namespace": namespace,
        "labels": {**_labels(migration), "app": proxy_name(migration)},
        "ownerReferences": [owner_reference(migration, uid)],
    }


def _with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with a digest of itself: the edge replaces a live object only when it differs."""
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    manifest["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return manifest


def upstream_url(service: str, namespace: str, port: int) -> str:
    return f"http://{service}.{namespace}.svc.cluster.local:{port}"


def proxy_args(
    spec: Hal9MigrationSpec, migration: str, namespace: str, flat_port: int, hier_port: int
) -> list[str]:
    """The proxy's command-line arguments (no secret is ever among them)."""
    shadow = spec.phases.shadow
    proxy = shadow.proxy
    args = [
        "--listen",
        f"$(POD_IP):{LISTEN_PORT}",
        "--admin",
        f"$(POD_IP):{ADMIN_PORT}",
        "--flat",
        upstream_url(spec.flat.service, namespace, flat_port),
        "--hierarchical",
        upstream_url(spec.hierarchical.service, namespace, hier_port),
        "--migration",
        migration,
        "--shadow-percent",
        str(shadow.mirror_percent),
        "--confidence-field",
        proxy.confidence_field,
        "--confidence-tolerance",
        str(proxy.confidence_tolerance),
        "--shadow-timeout",
        str(parse_duration(proxy.shadow_timeout).total_seconds()),
        "--max-in-flight",
        str(proxy.max_in_flight),
    ]
    for flag, values in (
        ("--ignore-field", proxy.ignore_fields),
        ("--redact-header", proxy.redact_headers),
        ("--redact-field", proxy.redact_fields),
    ):
        for value in values:
            args += [flag, value]
    return args


def build_deployment(
    *,
    namespace: str,
    migration: str,
    uid: str,
    spec: Hal9MigrationSpec,
    image: str,
    flat_port: int,
    hierarchical_port: int,
) -> dict[str, Any]:
    """The proxy's Deployment: restricted pod security, probes on its admin port, scraped by
    Prometheus through the usual ``prometheus.io`` annotations."""
    proxy = spec.phases.shadow.proxy
    labels = _labels(migration)
    container = {
        "name": CONTAINER,
        "image": proxy.image or image,
        "command": ["hal9-migration", "shadow-proxy"],
        "args": proxy_args(spec, migration, namespace, flat_port, hierarchical_port),
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "ports": [
            {"name": "http", "containerPort": LISTEN_PORT},
            {"name": "metrics", "containerPort": ADMIN_PORT},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(namespace, migration, uid),
        "spec": {
            "replicas": proxy.replicas,
            # Traffic goes through the proxy only once a pod has been ready this long: one that
            # crashes as it starts never carries requests.
            "minReadySeconds": MIN_READY_SECONDS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": {**labels, "app": proxy_name(migration)},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(ADMIN_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    # In-flight requests finish after SIGTERM (the proxy drains); then it exits.
                    "terminationGracePeriodSeconds": 15,
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                },
            },
        },
    }
    return _with_hash(manifest)


def build_service(
    *, namespace: str, migration: str, uid: str, flat_ports: list[dict[str, Any]]
) -> dict[str, Any]:
    """The proxy's Service, with flat's Service ports (same names and numbers), so whatever port the
    route object names for flat is there on the proxy too; all of them reach the proxy's listener."""
    ports = [
        {
            **({"name": p["name"]} if p.get("name") else {}),
            "port": p["port"],
            "targetPort": "http",
            "protocol": "TCP",
        }
        for p in flat_ports
    ]
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(namespace, migration, uid),
        "spec": {"selector": _labels(migration), "ports": ports},
    }
    return _with_hash(manifest)


def service_port(service: dict[str, Any] | None, wanted: int | None) -> tuple[int | None, str]:
    """The port of ``service`` the proxy sends to: ``wanted`` if the Service has it, else its first."""
    name = (service or {}).get("metadata", {}).get("name", "?")
    ports = [p for p in ((service or {}).get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
    numbers = [p["port"] for p in ports if isinstance(p.get("port"), int)]
    if not numbers:
        return None, f"Service {name} has no port"
    if wanted is None:
        return numbers[0], ""
    if wanted not in numbers:
        listed = ", ".join(map(str, numbers))
        return None, f"Service {name} has no port {wanted} (phases.shadow.proxy.port); it has {listed}"
    return wanted, ""
