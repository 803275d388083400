"""Rich route objects for the traffic routers' tests, and helpers to compare what routers may not touch.

The same objects go to the unit tests (pure routers) and to the integration tests (the real CRDs), so
every shape used here is one the real API server accepts.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from hal9_migration import models
from hal9_migration.traffic import TARGETING_PREFIX, ObservedRouting, Routing

FLAT = "hal9-flat"
HIER = "hal9-hierarchical"
NAME = "hal9"

METADATA: dict[str, Any] = {
    "name": NAME,
    "labels": {"app.kubernetes.io/name": "hal9", "team": "cognition"},
    "annotations": {"example.com/owner": "platform", "example.com/note": "keep me as I am"},
}


def rule(name: str, route: str, **headers: dict[str, str]) -> models.TargetingRule:
    """A targeting rule; header keyword names use ``_`` for ``-``."""
    return models.TargetingRule.model_validate(
        {
            "name": name,
            "match": {"headers": {k.replace("_", "-"): v for k, v in headers.items()}},
            "route": route,
        }
    )


INTERNAL = rule("internal-users", "Hierarchical", x_hal9_user_group={"exact": "internal"})
BETA = rule("beta", "Hierarchical", x_hal9_beta={"prefix": "yes.v1+"})
CLI = rule("legacy-clients", "Flat", user_agent={"regex": "^hal9-cli/1\\..*"})
TENANT = rule("tenant-override", "Flat", x_tenant={"exact": "globex"})
RULES = (INTERNAL, BETA, CLI, TENANT)


def virtual_service(namespace: str) -> dict[str, Any]:
    """Five HTTP routes: health (another Service), ``primary`` (named, rich), an unnamed route to both
    Services, a route mirroring to an audit Service, and a legacy route."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": copy.deepcopy(METADATA),
        "spec": {
            "hosts": ["hal9.example.com", "hal9"],
            "gateways": ["mesh", "gateways/hal9-gateway"],
            "http": [
                {
                    "name": "health",
                    "match": [{"uri": {"exact": "/healthz"}}],
                    "route": [{"destination": {"host": "hal9-health", "port": {"number": 8080}}}],
                },
                {
                    "name": "primary",
                    "match": [
                        {"uri": {"prefix": "/api"}, "headers": {"x-tenant": {"exact": "acme"}}},
                        {"uri": {"prefix": "/v2"}, "method": {"exact": "GET"}},
                    ],
                    "route": [
                        {
                            "destination": {
                                "host": f"{FLAT}.{namespace}.svc.cluster.local",
                                "port": {"number": 8080},
                                "subset": "v0",
                            },
                            "weight": 100,
                            "headers": {"request": {"set": {"x-backend": "flat"}}},
                        },
                        {
                            "destination": {"host": HIER, "port": {"number": 8080}},
                            "weight": 0,
                            "headers": {"response": {"add": {"x-backend": "hierarchical"}}},
                        },
                    ],
                    "timeout": "5s",
                    "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset"},
                    "headers": {"request": {"set": {"x-hal9": "1"}}, "response": {"remove": ["server"]}},
                    "fault": {"delay": {"percentage": {"value": 0.1}, "fixedDelay": "5s"}},
                    "corsPolicy": {"allowOrigins": [{"exact": "https://hal9.example.com"}], "maxAge": "24h"},
                },
                {
                    "match": [{"uri": {"prefix": "/stream"}}],
                    "route": [
                        {"destination": {"host": f"{FLAT}.{namespace}"}, "weight": 90},
                        {"destination": {"host": f"{HIER}.{namespace}.svc"}, "weight": 10},
                    ],
                    "rewrite": {"uri": "/"},
                },
                {
                    "name": "audit",
                    "match": [{"uri": {"prefix": "/audit"}}],
                    "route": [{"destination": {"host": "legacy-backend"}}],
                    "mirror": {"host": "audit.observability.svc.cluster.local", "port": {"number": 9000}},
                    "mirrorPercentage": {"value": 5.0},
                },
                {"name": "legacy", "route": [{"destination": {"host": "legacy-backend"}}], "timeout": "30s"},
            ],
        },
    }


def http_route(namespace: str) -> dict[str, Any]:
    """Four rules: health (another Service), ``api`` (named, rich, with a foreign RequestMirror), an
    unnamed rule to both Services (flat without weight), and a legacy rule."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": copy.deepcopy(METADATA),
        "spec": {
            "parentRefs": [{"name": "hal9-gateway", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["hal9.example.com"],
            "rules": [
                {
                    "name": "health",
                    "matches": [{"path": {"type": "Exact", "value": "/healthz"}}],
                    "backendRefs": [{"name": "hal9-health", "port": 8080}],
                },
                {
                    "name": "api",
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": "/api"},
                            "headers": [{"name": "x-tenant", "value": "acme"}],
                        },
                        {"path": {"type": "PathPrefix", "value": "/v2"}, "method": "GET"},
                    ],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": "x-hal9", "value": "1"}]},
                        },
                        {
                            "type": "RequestMirror",
                            "requestMirror": {"backendRef": {"name": "audit", "port": 9000}, "percent": 5},
                        },
                    ],
                    "backendRefs": [
                        {
                            "name": FLAT,
                            "namespace": namespace,
                            "port": 8080,
                            "weight": 100,
                            "filters": [
                                {
                                    "type": "ResponseHeaderModifier",
                                    "responseHeaderModifier": {
                                        "add": [{"name": "x-backend", "value": "flat"}]
                                    },
                                }
                            ],
                        },
                        {"name": HIER, "port": 8080, "weight": 0},
                    ],
                    "timeouts": {"request": "10s", "backendRequest": "5s"},
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/stream"}}],
                    "backendRefs": [{"name": FLAT, "port": 8080}, {"name": HIER, "port": 8080, "weight": 0}],
                },
                {
                    "name": "legacy",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/legacy"}}],
                    "backendRefs": [{"name": "legacy-backend", "port": 80}],
                },
            ],
        },
    }


def traffic_split(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": copy.deepcopy(METADATA),
        "spec": {
            "service": NAME,
            "matches": [{"kind": "HTTPRouteGroup", "name": "hal9-api"}],
            "backends": [{"service": FLAT, "weight": 100}, {"service": HIER, "weight": 0}],
        },
    }


def observed(routing: Routing, targeting: tuple[str, ...]) -> ObservedRouting:
    """What reading an object set to ``routing`` must give (targeting names depend on the router)."""
    return ObservedRouting(weight=routing.weight, mirror=routing.mirror, targeting=targeting)


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def istio_hosts(service: str, namespace: str) -> set[str]:
    return {
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    }


def blank_istio(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` without what the Istio router manages: targeting routes, our weights and our mirror."""
    out = copy.deepcopy(obj)
    ours = istio_hosts(FLAT, namespace) | istio_hosts(HIER, namespace)
    http = out["spec"]["http"]
    out["spec"]["http"] = [r for r in http if not r.get("name", "").startswith(TARGETING_PREFIX)]
    for route in out["spec"]["http"]:
        for entry in route.get("route", []):
            if entry["destination"]["host"] in ours:
                entry.pop("weight", None)
        if route.get("mirror", {}).get("host") in istio_hosts(HIER, namespace):
            route.pop("mirror")
            route.pop("mirrorPercentage", None)
    return out


def blank_gateway(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without what the Gateway API router manages: targeting rules, weights, our mirror."""
    out = copy.deepcopy(obj)
    rules = out["spec"]["rules"]
    out["spec"]["rules"] = [r for r in rules if not r.get("name", "").startswith(TARGETING_PREFIX)]
    for rule_ in out["spec"]["rules"]:
        for ref in rule_.get("backendRefs", []):
            if ref["name"] in (FLAT, HIER):
                ref.pop("weight", None)
        filters = [
            f
            for f in rule_.get("filters", [])
            if not (f["type"] == "RequestMirror" and f["requestMirror"]["backendRef"]["name"] == HIER)
        ]
        if filters:
            rule_["filters"] = filters
        else:
            rule_.pop("filters", None)
    return out


def blank_smi(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for backend in out["spec"]["backends"]:
        backend.pop("weight")
    return out


# --- hypothesis ----------------------------------------------------------------------------------

targetings = st.one_of(
    st.none(),
    st.lists(st.sampled_from(RULES), unique_by=lambda r: r.name, max_size=len(RULES)).map(tuple),
)
routings = st.builds(
    Routing,
    weight=st.integers(0, 100),
    mirror=st.one_of(st.just(0), st.just(100), st.integers(0, 100)),
    targeting=targetings,
)
weight_routings = st.builds(Routing, weight=st.integers(0, 100), mirror=st.just(0), targeting=st.just(()))
