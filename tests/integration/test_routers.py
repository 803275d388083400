"""The routers against the real CRDs: every object they render is accepted by the API server (schema
and CEL rules), reads back as the routing it was given, and leaves the user's parts alone.

Each step does what ``kube.py`` does: GET, ``set_routes``, replace with the resourceVersion read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from hal9_migration import models
from hal9_migration.traffic import (
    Backends,
    GatewayAPIRouter,
    IstioRouter,
    RouteProblem,
    Router,
    Routing,
    SMIRouter,
    gatewayapi,
)
from tests.integration.conftest import Cluster
from tests.support import traffic_objects as rt

# Shadow (mirror everything, targeting on), canary steps, a rule routed to Flat, back to nothing.
SEQUENCE = (
    Routing(weight=0, mirror=100, targeting=(rt.INTERNAL, rt.BETA)),
    Routing(weight=1, mirror=0, targeting=(rt.INTERNAL, rt.BETA)),
    Routing(weight=5, mirror=0, targeting=(rt.INTERNAL, rt.BETA, rt.CLI)),
    Routing(weight=10, mirror=50, targeting=(rt.CLI, rt.TENANT, rt.INTERNAL)),
    Routing(weight=10, mirror=0, targeting=None),
    Routing(weight=0, mirror=0, targeting=()),
)
SMI_SEQUENCE = tuple(Routing(weight=w) for w in (0, 1, 5, 10, 0))


def user_view(obj: dict[str, Any]) -> str:
    """The object without what the API server maintains (resourceVersion, generation, managedFields)."""
    meta = obj["metadata"]
    kept = {k: meta.get(k) for k in ("name", "namespace", "labels", "annotations")}
    return rt.canonical({**obj, "metadata": kept})


class Objects:
    """Create/get/replace one router's objects in the test namespace."""

    def __init__(self, cluster: Cluster, namespace: str, router: Router) -> None:
        self.api = kubernetes.client.CustomObjectsApi(cluster.api)
        self.router = router
        self.where = {
            "group": router.group,
            "version": router.version,
            "namespace": namespace,
            "plural": router.plural,
        }

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.api.create_namespaced_custom_object(body=body, **self.where)
        return created

    def get(self) -> dict[str, Any]:
        found: dict[str, Any] = self.api.get_namespaced_custom_object(name=self.router.name, **self.where)
        return found

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        stored: dict[str, Any] = self.api.replace_namespaced_custom_object(
            name=self.router.name, body=body, **self.where
        )
        return stored


def run_sequence(
    objects: Objects,
    body: dict[str, Any],
    blank: Callable[[dict[str, Any]], dict[str, Any]],
    sequence: tuple[Routing, ...],
    suffixes: tuple[str, ...],
) -> None:
    """Walk ``sequence``; ``suffixes`` name the managed routes in targeting names, in order."""
    router = objects.router
    user_parts = user_view(blank(objects.create(body)))
    targeting: tuple[str, ...] = ()
    for routing in sequence:
        try:
            stored = objects.replace(router.set_routes(objects.get(), routing))
        except kubernetes.client.ApiException as error:
            pytest.fail(f"the API server refused {routing}: {error.body}")
        if routing.targeting is not None:
            targeting = tuple(rt.TARGETING_PREFIX + r.name + s for s in suffixes for r in routing.targeting)
        observed = router.read_routes(objects.get())
        assert (observed.weight, observed.mirror, observed.targeting) == (
            routing.weight,
            routing.mirror,
            targeting,
        )
        # What the server stored is a fixed point: the next pass has nothing to write.
        assert router.set_routes(stored, routing) == stored
        assert user_view(blank(stored)) == user_parts


@pytest.mark.parametrize(("routes", "suffixes"), [([], ("@primary", "@1")), (["primary"], ("",))])
def test_istio_virtual_service(
    cluster: Cluster, namespace: str, routes: list[str], suffixes: tuple[str, ...]
) -> None:
    config = models.IstioRouter(virtual_service=rt.NAME, routes=routes)
    objects = Objects(cluster, namespace, IstioRouter(config, Backends(namespace, rt.FLAT, rt.HIER)))
    blank = lambda obj: rt.blank_istio(obj, namespace)  # noqa: E731
    run_sequence(objects, rt.virtual_service(namespace), blank, SEQUENCE, suffixes)


def test_gateway_api_http_route(cluster: Cluster, namespace: str) -> None:
    router = GatewayAPIRouter(
        models.GatewayAPIRouter(http_route=rt.NAME), Backends(namespace, rt.FLAT, rt.HIER)
    )
    objects = Objects(cluster, namespace, router)
    run_sequence(objects, rt.http_route(namespace), rt.blank_gateway, SEQUENCE, ("-0", "-1"))


def test_smi_traffic_split(cluster: Cluster, namespace: str) -> None:
    router = SMIRouter(models.SMIRouter(traffic_split=rt.NAME), Backends(namespace, rt.FLAT, rt.HIER))
    objects = Objects(cluster, namespace, router)
    run_sequence(objects, rt.traffic_split(namespace), rt.blank_smi, SMI_SEQUENCE, ())


def many_rules(count: int) -> tuple[models.TargetingRule, ...]:
    return tuple(rt.rule(f"group-{i}", "Hierarchical", x_hal9_group={"exact": str(i)}) for i in range(count))


def with_api_matches(namespace: str, count: int) -> dict[str, Any]:
    body = rt.http_route(namespace)
    body["spec"]["rules"][1]["matches"] = [
        {"path": {"type": "PathPrefix", "value": f"/api/{i}"}} for i in range(count)
    ]
    return body


@pytest.mark.parametrize(
    ("body", "fits", "too_many", "limit"),
    [
        # 4 rules, 2 of them managed: 6 targeting rules make 16 rules, 7 make 18.
        (rt.http_route, 6, 7, "MAX_RULES"),
        # 43 matches, 41 more per targeting rule: 2 make 125, 3 make 166.
        (lambda ns: with_api_matches(ns, 40), 2, 3, "MAX_MATCHES_TOTAL"),
    ],
)
def test_gateway_limits_are_the_crds(
    cluster: Cluster,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    body: Callable[[str], dict[str, Any]],
    fits: int,
    too_many: int,
    limit: str,
) -> None:
    """The router refuses exactly what the API server refuses: at its limit it writes, one beyond it
    raises RouteMisconfigured, and the object it would have written is indeed refused."""
    router = GatewayAPIRouter(
        models.GatewayAPIRouter(http_route=rt.NAME), Backends(namespace, rt.FLAT, rt.HIER)
    )
    objects = Objects(cluster, namespace, router)
    objects.create(body(namespace))
    objects.replace(router.set_routes(objects.get(), Routing(weight=5, targeting=many_rules(fits))))
    over = Routing(weight=5, targeting=many_rules(too_many))
    with pytest.raises(RouteProblem, match=r"HTTPRoute .* would need") as raised:
        router.set_routes(objects.get(), over)
    assert raised.value.reason == "RouteMisconfigured"
    monkeypatch.setattr(gatewayapi, limit, 10_000)
    with pytest.raises(kubernetes.client.ApiException) as refused:
        objects.replace(router.set_routes(objects.get(), over))
    assert refused.value.status == 422
