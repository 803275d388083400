"""The HAL9 stand-ins as Kubernetes objects: a Deployment and a selector-less Service per system (pure).

Tests, the demo and ``e2e/samples/hal9-standins.yaml`` use the same objects (a unit test checks the
sample against these builders), so what the demo shows is what the tests proved. Plain API dicts:
``kubectl apply`` them as YAML or create them through any client.

Each Deployment runs ``python -m hal9_migration.testing.standin`` (the node agent runs it from the
project's environment; on a real cluster the operator image has it too), listens on its pod IP from the
downward API, carries every knob as an explicit env entry (so ``kubectl set env deployment/...
HAL9_ERROR_RATE=0.3`` is one real rollout, and ``kubectl describe`` shows the current values), and
asks to be scraped (``prometheus.io/scrape``, ``prometheus.io/port``). Its Service has no selector
but the ``hal9.ai/endpoints-selector`` annotation the node agent's slice controller follows
(``endpointslices.py``); names match the route samples (``hal9-flat``, ``hal9-hierarchical``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .endpointslices import SELECTOR_ANNOTATION
from .standin import DEFAULT_PORT, KNOB_NAMES, SYSTEMS

IMAGE = "hal9-migration-operator:0.1.0"  # unused by the node agent; a real cluster's kubelet pulls it
PORT_NAME = "http"
SERVICE_PORT = 80


def standin_name(system: str) -> str:
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {SYSTEMS}, not {system!r}")
    return f"hal9-{system}"


def standin_labels(system: str) -> dict[str, str]:
    """The pod labels; ``app`` is what the Service's selector annotation and Prometheus's ``app``
    label use."""
    return {"app": standin_name(system), "hal9.ai/system": system}


def build_standin_deployment(
    namespace: str,
    system: str,
    *,
    port: int = DEFAULT_PORT,
    replicas: int = 1,
    knobs: Mapping[str, str] | None = None,
    image: str = IMAGE,
) -> dict[str, Any]:
    """The stand-in Deployment. ``knobs``: env values by name (``HAL9_ERROR_RATE``...), the rest "0"."""
    unknown = set(knobs or {}) - set(KNOB_NAMES)
    if unknown:
        raise ValueError(f"unknown knobs {sorted(unknown)}; known: {', '.join(KNOB_NAMES)}")
    values = {name: "0" for name in KNOB_NAMES} | dict(knobs or {})
    name = standin_name(system)
    labels = standin_labels(system)
    container = {
        "name": "hal9",
        "image": image,
        "command": ["python", "-m", "hal9_migration.testing.standin"],
        "args": ["--system", system, "--host", "$(POD_IP)", "--port", str(port)],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            *({"name": knob, "value": values[knob]} for knob in KNOB_NAMES),
        ],
        "ports": [{"name": PORT_NAME, "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT_NAME}, "periodSeconds": 1},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                # The stand-in drains for 1 s after SIGTERM, then exits.
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
        },
    }


def build_standin_service(namespace: str, system: str, *, service_port: int = SERVICE_PORT) -> dict[str, Any]:
    """The selector-less Service; its FQDN EndpointSlice comes from the node agent."""
    name = standin_name(system)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": standin_labels(system),
            "annotations": {SELECTOR_ANNOTATION: f"app={name}"},
        },
        "spec": {"ports": [{"name": PORT_NAME, "port": service_port, "targetPort": PORT_NAME}]},
    }


def build_standins(
    namespace: str,
    systems: Iterable[str] = SYSTEMS,
    *,
    port: int = DEFAULT_PORT,
    knobs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Deployment and Service of each system, in that order; ``knobs`` by system."""
    return [
        obj
        for system in systems
        for obj in (
            build_standin_deployment(namespace, system, port=port, knobs=(knobs or {}).get(system)),
            build_standin_service(namespace, system),
        )
    ]
