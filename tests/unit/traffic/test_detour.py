"""The shadow proxy in flat's place: every router sends flat's share to the proxy Service and back,
touching nothing else, and reads the detour from the object."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from hal9_migration import models
from hal9_migration.traffic import (
    Backends,
    GatewayAPIRouter,
    IstioRouter,
    NoopRouter,
    RouteProblem,
    Router,
    Routing,
    SMIRouter,
)
from tests.support import traffic_objects as rt

NS = "hal9"
PROXY = "shadow-m"
BACKENDS = Backends(NS, rt.FLAT, rt.HIER, proxy=PROXY)


def _routers() -> list[
    tuple[str, Router, Callable[[], dict[str, Any]], Callable[[dict[str, Any]], list[str]]]
]:
    def istio_flat(obj: dict[str, Any]) -> list[str]:
        return [
            str(e["destination"]["host"])
            for r in obj["spec"]["http"][1:3]  # the two routes to flat and hierarchical
            for e in r["route"]
            if not str(e["destination"]["host"]).startswith(rt.HIER)
        ]

    def gateway_flat(obj: dict[str, Any]) -> list[str]:
        return [
            str(ref["name"])
            for r in obj["spec"]["rules"]
            for ref in r.get("backendRefs", [])
            if ref["name"] in (rt.FLAT, PROXY)
        ]

    def smi_flat(obj: dict[str, Any]) -> list[str]:
        return [str(b["service"]) for b in obj["spec"]["backends"] if b["service"] != rt.HIER]

    noop = NoopRouter(backends=BACKENDS)
    return [
        (
            "istio",
            IstioRouter(models.IstioRouter(virtual_service=rt.NAME, routes=[]), BACKENDS),
            lambda: rt.virtual_service(NS),
            istio_flat,
        ),
        (
            "gateway",
            GatewayAPIRouter(models.GatewayAPIRouter(http_route=rt.NAME), BACKENDS),
            lambda: rt.http_route(NS),
            gateway_flat,
        ),
        (
            "smi",
            SMIRouter(models.SMIRouter(traffic_split=rt.NAME), BACKENDS),
            lambda: rt.traffic_split(NS),
            smi_flat,
        ),
        ("noop", noop, noop.route_object, lambda obj: [str(obj["spec"].get("detour", rt.FLAT))]),
    ]


ROUTERS = _routers()
IDS = [r[0] for r in ROUTERS]


@pytest.mark.parametrize(("kind", "router", "fresh", "flat_names"), ROUTERS, ids=IDS)
def test_flats_share_goes_to_the_proxy_and_comes_back_byte_for_byte(
    kind: str,
    router: Router,
    fresh: Callable[[], dict[str, Any]],
    flat_names: Callable[[dict[str, Any]], list[str]],
) -> None:
    original = router.set_routes(fresh(), Routing(0, 0, None))
    assert router.read_routes(original).detour is None
    detoured = router.set_routes(original, Routing(0, 0, None, detour=PROXY))
    names = flat_names(detoured)
    assert names and all(n.startswith(PROXY) for n in names), names
    observed = router.read_routes(detoured)
    assert (observed.weight, observed.mirror, observed.detour) == (0, 0, PROXY)
    assert router.set_routes(detoured, Routing(0, 0, None, detour=PROXY)) == detoured  # idempotent
    assert router.set_routes(detoured, Routing(0, 0, None)) == original  # nothing else was touched


def test_istio_keeps_the_hosts_own_form() -> None:
    router = ROUTERS[0][1]
    detoured = router.set_routes(rt.virtual_service(NS), Routing(0, 0, None, detour=PROXY))
    primary, stream = ([e["destination"]["host"] for e in r["route"]] for r in detoured["spec"]["http"][1:3])
    assert primary == [f"{PROXY}.{NS}.svc.cluster.local", rt.HIER]
    assert stream == [f"{PROXY}.{NS}", f"{rt.HIER}.{NS}.svc"]


@pytest.mark.parametrize(("kind", "router", "fresh", "flat_names"), ROUTERS, ids=IDS)
def test_only_the_migrations_own_proxy_may_stand_in(
    kind: str,
    router: Router,
    fresh: Callable[[], dict[str, Any]],
    flat_names: Callable[[dict[str, Any]], list[str]],
) -> None:
    with pytest.raises(ValueError, match="is not this migration's shadow proxy"):
        router.set_routes(fresh(), Routing(0, 0, None, detour="shadow-other"))


def test_without_a_proxy_a_backend_of_that_name_is_someone_elses() -> None:
    plain = GatewayAPIRouter(models.GatewayAPIRouter(http_route=rt.NAME), Backends(NS, rt.FLAT, rt.HIER))
    detoured = ROUTERS[1][1].set_routes(rt.http_route(NS), Routing(0, 0, None, detour=PROXY))
    with pytest.raises(RouteProblem, match="no backendRef to hal9-flat"):
        plain.read_routes(copy.deepcopy(detoured))
