"""Istio ``VirtualService`` (networking.istio.io/v1): weights, mirror and targeting on HTTP routes.

The operator manages the named HTTP routes (or, with no names, every route to either Service): the
``weight`` of their two destinations, their ``mirror`` when it points at the hierarchical Service,
and its own targeting routes (named ``hal9-targeting-…``), placed before the route they refine
because Istio evaluates HTTP routes in order and the first match wins.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import models
from ._util import (
    agreed,
    check_routing,
    copy_without,
    describe,
    detour_of,
    flat_slot,
    host_is_service,
    is_targeting,
    list_at,
    select,
    spec_list,
    weight_of,
)
from .base import TARGETING_PREFIX, Backends, ObservedRouting, RouteProblem, Routing, percent

# What a targeting route does not inherit from the route it refines: its identity, its matching, its
# destinations, and mirroring (the operator mirrors on the weighted route only).
_NOT_INHERITED = (
    "name",
    "match",
    "route",
    "mirror",
    "mirrorPercentage",
    "mirrors",
    "mirrorPercent",
    "mirror_percent",
)


@dataclass(frozen=True)
class _Managed:
    """A managed HTTP route and its two destinations (the very dicts inside the object being edited)."""

    index: int  # position in spec.http
    route: dict[str, Any]
    flat: dict[str, Any]
    hierarchical: dict[str, Any]
    label: str


class IstioRouter:
    """Routes traffic through the HTTP routes of one VirtualService."""

    kind: str = "VirtualService"
    group: str = "networking.istio.io"
    version: str = "v1"
    plural: str = "virtualservices"

    def __init__(self, config: models.IstioRouter, backends: Backends) -> None:
        self.name = config.virtual_service
        self.routes = tuple(config.routes)
        self.backends = backends
        self._where = f"VirtualService {backends.namespace}/{config.virtual_service}"

    def unsupported(self, routing: Routing) -> str | None:
        """Istio carries weights, a mirror and header matches: nothing is out of reach."""
        return None

    def read_routes(self, obj: Mapping[str, Any]) -> ObservedRouting:
        http = spec_list(obj, "http")
        managed = self._managed(http)
        return ObservedRouting(
            weight=agreed(percent(weight_of(m.hierarchical, 0), weight_of(m.flat, 0)) for m in managed),
            mirror=agreed(self._mirror_of(m.route) for m in managed),
            targeting=tuple(r["name"] for r in http if isinstance(r, dict) and is_targeting(r)),
            detour=agreed(self._detour_of(m.flat) for m in managed),
        )

    def set_routes(self, obj: Mapping[str, Any], routing: Routing) -> dict[str, Any]:
        check_routing(routing, self.backends)
        out = copy.deepcopy(dict(obj))
        http = spec_list(out, "http")
        managed = self._managed(http)
        for m in managed:
            m.hierarchical["weight"] = routing.weight
            self._send_flat_to(m.flat, routing.detour or self.backends.flat)
            m.flat["weight"] = 100 - routing.weight
            self._set_mirror(m, routing.mirror)
        if routing.targeting is not None:
            out["spec"]["http"] = self._with_targeting(http, managed, routing.targeting)
        return out

    # --- which routes are ours -------------------------------------------------------------------

    def _is(self, entry: Any, service: str) -> bool:
        destination = entry.get("destination") if isinstance(entry, dict) else None
        return isinstance(destination, dict) and host_is_service(
            destination.get("host"), service, self.backends.namespace
        )

    def _is_flat(self, entry: Any) -> bool:
        return any(self._is(entry, service) for service in flat_slot(self.backends))

    def _detour_of(self, entry: Mapping[str, Any]) -> str | None:
        proxy = self.backends.proxy
        return detour_of(proxy, self.backends) if proxy and self._is(entry, proxy) else None

    def _send_flat_to(self, entry: dict[str, Any], service: str) -> None:
        """Point flat's destination at ``service`` in the host's own form (short, .ns, .ns.svc...)."""
        destination = entry["destination"]
        host = str(destination["host"])
        current = next(s for s in flat_slot(self.backends) if self._is(entry, s))
        destination["host"] = service + host[len(current) :]

    def _touches_ours(self, route: Mapping[str, Any]) -> bool:
        services = (*flat_slot(self.backends), self.backends.hierarchical)
        return any(self._is(e, s) for e in list_at(route, "route") for s in services)

    def _managed(self, http: list[Any]) -> list[_Managed]:
        picked = select(http, self.routes, self._touches_ours, self._where, "HTTP route")
        if not picked:
            raise RouteProblem(
                "RouteMisconfigured",
                f"{self._where} has no HTTP route with a destination to Service "
                f"{self.backends.flat} or {self.backends.hierarchical}",
            )
        return [self._split(i, r) for i, r in picked]

    def _split(self, index: int, route: dict[str, Any]) -> _Managed:
        """The route's flat and hierarchical destinations; anything but exactly one of each is refused."""
        label = describe(route, "HTTP route", index)
        entries = list_at(route, "route")
        flat = [e for e in entries if self._is_flat(e)]
        hierarchical = [e for e in entries if self._is(e, self.backends.hierarchical)]
        others = [e for e in entries if not any(e is x for x in (*flat, *hierarchical))]
        if len(flat) == 1 and len(hierarchical) == 1 and not others:
            return _Managed(index, route, flat[0], hierarchical[0], label)
        problems = [
            f"{len(found)} destinations to Service {service}" if found else f"no destination to {service}"
            for found, service in ((flat, self.backends.flat), (hierarchical, self.backends.hierarchical))
            if len(found) != 1
        ]
        if others:
            hosts = [
                str((e.get("destination") or {}).get("host")) if isinstance(e, dict) else "?" for e in others
            ]
            problems.append(f"other destinations {', '.join(hosts)}")
        raise RouteProblem(
            "RouteMisconfigured",
            f"{self._where}: {label} must route to exactly one destination of Service "
            f"{self.backends.flat} and one of {self.backends.hierarchical}; it has {'; '.join(problems)}",
        )

    # --- mirror ----------------------------------------------------------------------------------

    def _mirror_of(self, route: Mapping[str, Any]) -> int:
        mirror = route.get("mirror")
        if not (isinstance(mirror, dict) and host_is_service(mirror.get("host"), *self._hierarchical)):
            return 0
        share = route.get("mirrorPercentage")
        value = share.get("value") if isinstance(share, dict) else route.get("mirrorPercent")
        return round(value) if isinstance(value, int | float) else 100  # Istio's default: everything

    def _set_mirror(self, m: _Managed, mirror: int) -> None:
        current = m.route.get("mirror")
        ours = isinstance(current, dict) and host_is_service(current.get("host"), *self._hierarchical)
        if mirror == 0:
            if ours:
                m.route.pop("mirror", None)
                m.route.pop("mirrorPercentage", None)
            return
        if current is not None and not ours:
            host = current.get("host") if isinstance(current, dict) else current
            raise RouteProblem(
                "RouteMisconfigured",
                f"{self._where}: {m.label} already mirrors to {host}; Istio mirrors to one host per "
                f"route, so remove that mirror or set spec.phases.shadow.mirrorPercent to 0",
            )
        destination = m.hierarchical["destination"]
        target = {k: copy.deepcopy(destination[k]) for k in ("host", "port", "subset") if k in destination}
        m.route["mirror"] = target
        m.route["mirrorPercentage"] = {"value": float(mirror)}

    @property
    def _hierarchical(self) -> tuple[str, str]:
        return self.backends.hierarchical, self.backends.namespace

    # --- targeting -------------------------------------------------------------------------------

    def _with_targeting(
        self, http: list[Any], managed: list[_Managed], rules: tuple[models.TargetingRule, ...]
    ) -> list[Any]:
        """``http`` without old targeting routes, with one per rule placed before each managed route."""
        position = {m.index: (k, m) for k, m in enumerate(managed)}
        out: list[Any] = []
        for i, route in enumerate(http):
            if isinstance(route, dict) and is_targeting(route):
                continue
            if i in position:
                k, m = position[i]
                name = route.get("name")
                suffix = (
                    "" if len(managed) == 1 else "@" + (name if isinstance(name, str) and name else str(k))
                )
                out.extend(self._targeting_route(m, rule, suffix) for rule in rules)
            out.append(route)
        return out

    def _targeting_route(self, m: _Managed, rule: models.TargetingRule, suffix: str) -> dict[str, Any]:
        """A copy of the managed route (timeouts, retries, headers… apply alike) that matches the rule's
        headers too and sends everything to one Service."""
        wanted = {name: match.model_dump(exclude_none=True) for name, match in rule.match.headers.items()}
        matches = list_at(m.route, "match")
        match = [
            {**copy.deepcopy(x), "headers": {**copy.deepcopy(x.get("headers") or {}), **wanted}}
            for x in (e if isinstance(e, dict) else {} for e in matches or [{}])
        ]
        entry = m.hierarchical if rule.route is models.Route.HIERARCHICAL else m.flat
        return {
            "name": TARGETING_PREFIX + rule.name + suffix,
            "match": match,
            **copy_without(m.route, _NOT_INHERITED),
            "route": [copy_without(entry, ("weight",))],
        }
