"""Traffic routers: one module per mesh API behind the ``Router`` Protocol, and the factory.

Routers are pure dict transforms (no I/O); ``kube.py`` reads and replaces the route objects.
"""

from __future__ import annotations

from .. import models
from .base import (
    MEMORY_ANNOTATION,
    TARGETING_PREFIX,
    Backends,
    ObservedRouting,
    RouteProblem,
    Router,
    Routing,
    percent,
    read_memory,
    with_memory,
)
from .gatewayapi import GatewayAPIRouter
from .istio import IstioRouter
from .noop import NoopRouter
from .smi import SMIRouter

__all__ = [
    "MEMORY_ANNOTATION",
    "TARGETING_PREFIX",
    "Backends",
    "GatewayAPIRouter",
    "IstioRouter",
    "NoopRouter",
    "ObservedRouting",
    "RouteProblem",
    "Router",
    "Routing",
    "SMIRouter",
    "percent",
    "read_memory",
    "router_for",
    "with_memory",
]


def router_for(spec: models.Hal9MigrationSpec, namespace: str, proxy: str | None = None) -> Router:
    """The router the spec names (the models guarantee exactly one), between its two Services;
    ``proxy`` is the migration's shadow proxy Service, which may stand in flat's place."""
    backends = Backends(
        namespace=namespace, flat=spec.flat.service, hierarchical=spec.hierarchical.service, proxy=proxy
    )
    chosen = spec.traffic_router
    if chosen.istio is not None:
        return IstioRouter(chosen.istio, backends)
    if chosen.gateway_api is not None:
        return GatewayAPIRouter(chosen.gateway_api, backends)
    if chosen.smi is not None:
        return SMIRouter(chosen.smi, backends)
    raise ValueError("spec.trafficRouter names no router")  # unreachable for a validated spec
