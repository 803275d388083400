"""A router that routes nothing: its "route object" is a plain dict holding the routing itself.

It lets the phase machine run (and be unit-tested) without a mesh: the object is
``{"metadata": {...}, "spec": {"weight": int, "mirror": int, "targeting": [names], "detour"?: str}}``,
where the names are written the way the real routers name their targeting routes with one managed route
(``hal9-targeting-<rule>``), so ``ObservedRouting`` reads the same whichever router produced it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from ._util import check_routing
from .base import TARGETING_PREFIX, Backends, ObservedRouting, RouteProblem, Routing


class NoopRouter:
    """Carries any routing; raises only for an object without ``spec``."""

    kind: str = "NoopRoute"
    group: str = "noop.migration.hal9.ai"
    version: str = "v1"
    plural: str = "nooproutes"

    def __init__(self, name: str = "noop", backends: Backends | None = None) -> None:
        self.name = name
        self.backends = backends or Backends(namespace="default", flat="flat", hierarchical="hierarchical")

    def unsupported(self, routing: Routing) -> str | None:
        return None

    def route_object(self, weight: int = 0, mirror: int = 0, targeting: Iterable[str] = ()) -> dict[str, Any]:
        """A fresh route object for tests; ``targeting`` takes rule names (the prefix is added)."""
        return {
            "metadata": {"name": self.name, "namespace": self.backends.namespace},
            "spec": {
                "weight": weight,
                "mirror": mirror,
                "targeting": [TARGETING_PREFIX + name for name in targeting],
            },
        }

    def read_routes(self, obj: Mapping[str, Any]) -> ObservedRouting:
        spec = self._spec(obj)
        return ObservedRouting(
            weight=spec.get("weight", 0),
            mirror=spec.get("mirror", 0),
            targeting=tuple(spec.get("targeting") or ()),
            detour=spec.get("detour"),
        )

    def set_routes(self, obj: Mapping[str, Any], routing: Routing) -> dict[str, Any]:
        check_routing(routing, self.backends)
        out = copy.deepcopy(dict(obj))
        spec = self._spec(out)
        spec["weight"] = routing.weight
        spec["mirror"] = routing.mirror
        if routing.detour is not None:
            spec["detour"] = routing.detour
        else:
            spec.pop("detour", None)
        if routing.targeting is not None:
            spec["targeting"] = [TARGETING_PREFIX + rule.name for rule in routing.targeting]
        return out

    def _spec(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            where = f"{self.kind} {self.backends.namespace}/{self.name}"
            raise RouteProblem("RouteMisconfigured", f"{where} has no spec")
        return spec
