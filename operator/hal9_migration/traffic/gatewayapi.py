"""Gateway API ``HTTPRoute`` (gateway.networking.k8s.io/v1): backendRef weights, mirror, targeting.

The operator manages the named rules (or, with no names, every rule with a backendRef to either
Service): the two backendRefs' ``weight``,
its own ``RequestMirror`` filter (to the hierarchical Service) and its targeting rules (named
``hal9-targeting-…``). Targeting rules win over the weighted rule because the Gateway API gives
precedence to the match with more header matches; they are also placed first for readers.

The CRD's limits are checked here so that a route the API server would refuse is reported as
RouteMisconfigured with a message a person can act on, instead of a 422 on every pass.
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
    is_targeting,
    list_at,
    select,
    spec_list,
    weight_of,
)
from .base import TARGETING_PREFIX, Backends, ObservedRouting, RouteProblem, Routing, percent

# Limits of the HTTPRoute v1 CRD (standard channel), so the operator never sends what it refuses.
MAX_RULES = 16
MAX_MATCHES_PER_RULE = 64
MAX_MATCHES_TOTAL = 128  # x-kubernetes-validations on spec.rules
MAX_HEADERS_PER_MATCH = 16
MAX_FILTERS = 16
MAX_NAME = 253
# What a match without ``path`` means (and what the API server fills in): every request.
DEFAULT_MATCH: dict[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}}
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")


@dataclass(frozen=True)
class _Managed:
    """A managed rule and its two backendRefs (the very dicts inside the object being edited)."""

    rule: dict[str, Any]
    flat: dict[str, Any]
    hierarchical: dict[str, Any]
    label: str


class GatewayAPIRouter:
    """Routes traffic through the rules of one HTTPRoute."""

    kind: str = "HTTPRoute"
    group: str = "gateway.networking.k8s.io"
    version: str = "v1"
    plural: str = "httproutes"

    def __init__(self, config: models.GatewayAPIRouter, backends: Backends) -> None:
        self.name = config.http_route
        self.rules = tuple(config.rules)
        self.backends = backends
        self._where = f"HTTPRoute {backends.namespace}/{config.http_route}"

    def unsupported(self, routing: Routing) -> str | None:
        """HTTPRoute carries weights, mirrors and header matches: nothing is out of reach."""
        return None

    def read_routes(self, obj: Mapping[str, Any]) -> ObservedRouting:
        rules = spec_list(obj, "rules")
        managed = self._managed(rules)
        return ObservedRouting(
            weight=agreed(percent(weight_of(m.hierarchical, 1), weight_of(m.flat, 1)) for m in managed),
            mirror=agreed(self._mirror_of(m.rule) for m in managed),
            targeting=tuple(r["name"] for r in rules if isinstance(r, dict) and is_targeting(r)),
            detour=agreed(detour_of(str(m.flat.get("name")), self.backends) for m in managed),
        )

    def set_routes(self, obj: Mapping[str, Any], routing: Routing) -> dict[str, Any]:
        check_routing(routing, self.backends)
        out = copy.deepcopy(dict(obj))
        rules = spec_list(out, "rules")
        managed = self._managed(rules)
        for m in managed:
            m.hierarchical["weight"] = routing.weight
            m.flat["name"] = routing.detour or self.backends.flat
            m.flat["weight"] = 100 - routing.weight
            self._set_mirror(m, routing.mirror)
        if routing.targeting is not None:
            out["spec"]["rules"] = self._with_targeting(rules, managed, routing.targeting)
        return out

    # --- which rules are ours --------------------------------------------------------------------

    def _is(self, ref: Any, service: str) -> bool:
        """Whether a backendRef names ``service`` in the migration's namespace (defaults as the CRD's)."""
        return (
            isinstance(ref, dict)
            and ref.get("name") == service
            and (ref.get("kind") or "Service") == "Service"
            and (ref.get("group") or "") == ""
            and ref.get("namespace") in (None, self.backends.namespace)
        )

    def _is_flat(self, ref: Any) -> bool:
        return any(self._is(ref, service) for service in flat_slot(self.backends))

    def _managed(self, rules: list[Any]) -> list[_Managed]:
        services = (*flat_slot(self.backends), self.backends.hierarchical)
        picked = select(
            rules,
            self.rules,
            lambda r: any(self._is(ref, s) for ref in list_at(r, "backendRefs") for s in services),
            self._where,
            "rule",
        )
        managed = [self._split(i, rule) for i, rule in picked]
        if not managed:
            raise RouteProblem(
                "RouteMisconfigured",
                f"{self._where} has no rule with a backendRef to Service "
                f"{self.backends.flat} or {self.backends.hierarchical}",
            )
        return managed

    def _split(self, index: int, rule: dict[str, Any]) -> _Managed:
        label = describe(rule, "rule", index)
        refs = list_at(rule, "backendRefs")
        flat = [r for r in refs if self._is_flat(r)]
        hierarchical = [r for r in refs if self._is(r, self.backends.hierarchical)]
        others = [r for r in refs if not any(r is x for x in (*flat, *hierarchical))]
        if len(flat) == 1 and len(hierarchical) == 1 and not others:
            return _Managed(rule, flat[0], hierarchical[0], label)
        problems = [
            f"{len(found)} backendRefs to Service {service}" if found else f"no backendRef to {service}"
            for found, service in ((flat, self.backends.flat), (hierarchical, self.backends.hierarchical))
            if len(found) != 1
        ]
        if others:
            names = [str(r.get("name")) if isinstance(r, dict) else "?" for r in others]
            problems.append(f"other backendRefs {', '.join(names)}")
        raise RouteProblem(
            "RouteMisconfigured",
            f"{self._where}: {label} must have exactly one backendRef to Service {self.backends.flat} "
            f"and one to {self.backends.hierarchical}; it has {'; '.join(problems)}",
        )

    # --- mirror ----------------------------------------------------------------------------------

    def _is_our_mirror(self, entry: Any) -> bool:
        return (
            isinstance(entry, dict)
            and entry.get("type") == "RequestMirror"
            and isinstance(entry.get("requestMirror"), dict)
            and self._is(entry["requestMirror"].get("backendRef"), self.backends.hierarchical)
        )

    def _mirror_of(self, rule: Mapping[str, Any]) -> int:
        ours = [f["requestMirror"] for f in list_at(rule, "filters") if self._is_our_mirror(f)]
        if not ours:
            return 0
        if isinstance(ours[0].get("percent"), int):
            return int(ours[0]["percent"])
        fraction = ours[0].get("fraction")
        if isinstance(fraction, dict) and isinstance(fraction.get("numerator"), int):
            denominator: int = fraction.get("denominator") or 100
            return round(100 * int(fraction["numerator"]) / denominator)
        return 100  # neither percent nor fraction: the Gateway API mirrors every request

    def _set_mirror(self, m: _Managed, mirror: int) -> None:
        """Our RequestMirror filter, at the position it had (another RequestMirror is the user's: the
        filter may repeat, so both stay)."""
        filters = list_at(m.rule, "filters")
        ours = [i for i, f in enumerate(filters) if self._is_our_mirror(f)]
        if mirror == 0 and not ours:
            return
        kept = [f for f in filters if not self._is_our_mirror(f)]
        if mirror > 0:
            ref = {"group": "", "kind": "Service", "name": self.backends.hierarchical}
            if "port" in m.hierarchical:
                ref["port"] = m.hierarchical["port"]
            filter_ = {"type": "RequestMirror", "requestMirror": {"backendRef": ref, "percent": mirror}}
            kept.insert(ours[0] if ours else len(kept), filter_)
            if len(kept) > MAX_FILTERS:
                raise RouteProblem(
                    "RouteMisconfigured",
                    f"{self._where}: {m.label} already has {MAX_FILTERS} filters, the most an HTTPRoute "
                    f"rule may have, so the operator cannot add its RequestMirror filter",
                )
        if kept:
            m.rule["filters"] = kept
        else:
            m.rule.pop("filters", None)

    # --- targeting -------------------------------------------------------------------------------

    def _with_targeting(
        self, rules: list[Any], managed: list[_Managed], targeting: tuple[models.TargetingRule, ...]
    ) -> list[Any]:
        position = {id(m.rule): (k, m) for k, m in enumerate(managed)}
        out: list[Any] = []
        for rule in rules:
            if isinstance(rule, dict) and is_targeting(rule):
                continue
            if id(rule) in position:
                k, m = position[id(rule)]
                suffix = "" if len(managed) == 1 else f"-{k}"
                out.extend(self._targeting_rule(m, t, suffix) for t in targeting)
            out.append(rule)
        self._check_limits(out, len(managed), len(targeting))
        return out

    def _targeting_rule(self, m: _Managed, target: models.TargetingRule, suffix: str) -> dict[str, Any]:
        """A copy of the managed rule (filters, timeouts apply alike) matching the targeting rule's
        headers too, with one backendRef."""
        name = TARGETING_PREFIX + target.name + suffix
        if len(name) > MAX_NAME:
            raise RouteProblem(
                "RouteMisconfigured",
                f"{self._where}: the rule name {name[:40]}… for targeting rule {target.name!r} would be "
                f"longer than {MAX_NAME} characters; choose a shorter targeting rule name",
            )
        wanted = [_header(header, match) for header, match in target.match.headers.items()]
        taken = {h["name"].lower() for h in wanted}
        matches = []
        for original in (e for e in m.rule.get("matches") or [DEFAULT_MATCH] if isinstance(e, dict)):
            match = copy.deepcopy(original)
            headers = match.get("headers") or []
            kept = [h for h in headers if not isinstance(h, dict) or str(h.get("name")).lower() not in taken]
            match["headers"] = kept + wanted
            if len(match["headers"]) > MAX_HEADERS_PER_MATCH:
                raise RouteProblem(
                    "RouteMisconfigured",
                    f"{self._where}: targeting rule {target.name!r} on {m.label} would need "
                    f"{len(match['headers'])} header matches in one match; HTTPRoute allows "
                    f"{MAX_HEADERS_PER_MATCH}",
                )
            matches.append(match)
        entry = m.hierarchical if target.route is models.Route.HIERARCHICAL else m.flat
        out = {
            "name": name,
            "matches": matches,
            **copy_without(m.rule, ("name", "matches", "backendRefs", "filters")),
            # weight 1 is the CRD's default: written out, the object reads back exactly as sent.
            "backendRefs": [{**copy_without(entry, ("weight",)), "weight": 1}],
        }
        filters = [copy.deepcopy(f) for f in list_at(m.rule, "filters") if not self._is_our_mirror(f)]
        if filters:
            out["filters"] = filters
        return out

    def _check_limits(self, rules: list[Any], managed: int, targeting: int) -> None:
        counts = [len(r.get("matches") or [DEFAULT_MATCH]) if isinstance(r, dict) else 0 for r in rules]
        added = f"{targeting} targeting rules for each of {managed} managed rules"
        if len(rules) > MAX_RULES:
            raise RouteProblem(
                "RouteMisconfigured",
                f"{self._where} would need {len(rules)} rules with {added}; an HTTPRoute holds at most "
                f"{MAX_RULES}: remove targeting rules or split the HTTPRoute",
            )
        if max(counts, default=0) > MAX_MATCHES_PER_RULE or sum(counts) > MAX_MATCHES_TOTAL:
            raise RouteProblem(
                "RouteMisconfigured",
                f"{self._where} would need {sum(counts)} matches with {added}; an HTTPRoute holds at "
                f"most {MAX_MATCHES_TOTAL} ({MAX_MATCHES_PER_RULE} per rule): remove targeting rules "
                f"or matches",
            )


def _header(name: str, match: models.StringMatch) -> dict[str, str]:
    """A Gateway API header match for one of ours. Values must be non-empty, and RegularExpression is
    a full match in Envoy-based implementations, so a prefix becomes ``^<escaped>.*``."""
    if match.exact:
        return {"name": name, "type": "Exact", "value": match.exact}
    if match.regex:
        return {"name": name, "type": "RegularExpression", "value": match.regex}
    if match.prefix:
        escaped = "".join("\\" + c if c in _REGEX_SPECIAL else c for c in match.prefix)
        return {"name": name, "type": "RegularExpression", "value": f"^{escaped}.*"}
    # An empty exact or regex means an empty value; an empty prefix means any value.
    return {"name": name, "type": "RegularExpression", "value": ".*" if match.prefix == "" else "^$"}
