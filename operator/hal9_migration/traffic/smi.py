"""SMI ``TrafficSplit`` (split.smi-spec.io/v1alpha4): backend weights, nothing more.

A TrafficSplit has no mirror and no per-request match of its own (``spec.matches`` only narrows the
whole split to HTTPRouteGroups), so a migration that needs either is refused up front with a message
saying which spec field to change, rather than silently carrying half of its routing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .. import models
from ._util import check_routing, detour_of, flat_slot, spec_list, weight_of
from .base import Backends, ObservedRouting, RouteProblem, Routing, percent

NO_MIRROR = (
    "SMI TrafficSplit cannot mirror traffic: set spec.phases.shadow.mode to Proxy (the shadow proxy "
    "copies requests instead) or spec.phases.shadow.mirrorPercent to 0"
)
NO_TARGETING = "SMI TrafficSplit cannot route by request header: remove spec.targeting"


class SMIRouter:
    """Routes traffic through the backend weights of one TrafficSplit."""

    kind: str = "TrafficSplit"
    group: str = "split.smi-spec.io"
    version: str = "v1alpha4"
    plural: str = "trafficsplits"

    def __init__(self, config: models.SMIRouter, backends: Backends) -> None:
        self.name = config.traffic_split
        self.backends = backends
        self._where = f"TrafficSplit {backends.namespace}/{config.traffic_split}"

    def unsupported(self, routing: Routing) -> str | None:
        if routing.mirror > 0:
            return NO_MIRROR
        if routing.targeting:
            return NO_TARGETING
        return None

    def read_routes(self, obj: Mapping[str, Any]) -> ObservedRouting:
        flat, hierarchical = self._backends(spec_list(obj, "backends"))
        weight = percent(weight_of(hierarchical, 0), weight_of(flat, 0))
        detour = detour_of(str(flat.get("service")), self.backends)
        return ObservedRouting(weight=weight, mirror=0, targeting=(), detour=detour)

    def set_routes(self, obj: Mapping[str, Any], routing: Routing) -> dict[str, Any]:
        check_routing(routing, self.backends)
        reason = self.unsupported(routing)
        if reason is not None:
            raise RouteProblem("UnsupportedByRouter", f"{self._where}: {reason}")
        out = copy.deepcopy(dict(obj))
        flat, hierarchical = self._backends(spec_list(out, "backends"))
        hierarchical["weight"] = routing.weight
        flat["service"] = routing.detour or self.backends.flat
        flat["weight"] = 100 - routing.weight
        return out

    def _backends(self, backends: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The flat (or shadow proxy) and hierarchical entries; a third backend would take a share the
        weights ignore."""
        found: dict[str, list[dict[str, Any]]] = {self.backends.flat: [], self.backends.hierarchical: []}
        others: list[str] = []
        for entry in backends:
            service = entry.get("service") if isinstance(entry, dict) else None
            slot = self.backends.flat if service in flat_slot(self.backends) else service
            if isinstance(slot, str) and slot in found and isinstance(entry, dict):
                found[slot].append(entry)
            else:
                others.append(str(service))
        problems = [
            f"{len(entries)} backends for Service {service}" if entries else f"no backend for {service}"
            for service, entries in found.items()
            if len(entries) != 1
        ]
        if others:
            problems.append(f"other backends {', '.join(others)}")
        if problems:
            raise RouteProblem(
                "RouteMisconfigured",
                f"{self._where}: spec.backends must list Service {self.backends.flat} and Service "
                f"{self.backends.hierarchical} once each and nothing else; it has {'; '.join(problems)}",
            )
        return found[self.backends.flat][0], found[self.backends.hierarchical][0]
