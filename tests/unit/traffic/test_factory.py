"""``router_for``: the spec's one traffic router, between the spec's two Services."""

from __future__ import annotations

from typing import Any

import pytest

from hal9_migration import models
from hal9_migration.traffic import Backends, GatewayAPIRouter, IstioRouter, SMIRouter, router_for
from tests.support.manifests import load_sample

SPEC = load_sample("flat-to-hierarchical")["spec"]


def spec_with(traffic_router: dict[str, Any]) -> models.Hal9MigrationSpec:
    return models.Hal9MigrationSpec.model_validate({**SPEC, "trafficRouter": traffic_router})


@pytest.mark.parametrize(
    ("traffic_router", "cls", "name", "identity"),
    [
        (
            {"istio": {"virtualService": "hal9-vs", "routes": ["primary", "api"]}},
            IstioRouter,
            "hal9-vs",
            ("VirtualService", "networking.istio.io", "v1", "virtualservices"),
        ),
        (
            {"gatewayAPI": {"httpRoute": "hal9-route"}},
            GatewayAPIRouter,
            "hal9-route",
            ("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes"),
        ),
        (
            {"smi": {"trafficSplit": "hal9-split"}},
            SMIRouter,
            "hal9-split",
            ("TrafficSplit", "split.smi-spec.io", "v1alpha4", "trafficsplits"),
        ),
    ],
)
def test_router_for(traffic_router: dict[str, Any], cls: type, name: str, identity: tuple[str, ...]) -> None:
    router = router_for(spec_with(traffic_router), "prod")
    assert type(router) is cls
    assert router.name == name
    assert (router.kind, router.group, router.version, router.plural) == identity
    assert router.backends == Backends(namespace="prod", flat="hal9-flat", hierarchical="hal9-hierarchical")


def test_istio_keeps_the_route_names() -> None:
    router = router_for(spec_with({"istio": {"virtualService": "hal9", "routes": ["b", "a"]}}), "prod")
    assert isinstance(router, IstioRouter)
    assert router.routes == ("b", "a")
