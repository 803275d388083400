"""The SMI router: weights on a TrafficSplit's two backends; mirroring and targeting are refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration import models
from hal9_migration.traffic import Backends, ObservedRouting, RouteProblem, Routing, SMIRouter
from tests.support import traffic_objects as rt

NS = "hal9"
ROUTER = SMIRouter(models.SMIRouter(traffic_split=rt.NAME), Backends(NS, rt.FLAT, rt.HIER))
WHERE = f"TrafficSplit {NS}/{rt.NAME}"


def test_reads_and_sets_weights() -> None:
    before = rt.traffic_split(NS)
    assert ROUTER.read_routes(before) == ObservedRouting(weight=0, mirror=0, targeting=())
    after = ROUTER.set_routes(before, Routing(weight=10))
    assert after["spec"]["backends"] == [
        {"service": rt.FLAT, "weight": 90},
        {"service": rt.HIER, "weight": 10},
    ]
    assert ROUTER.read_routes(after) == ObservedRouting(weight=10, mirror=0, targeting=())
    assert {k: v for k, v in after.items() if k != "spec"} == {k: v for k, v in before.items() if k != "spec"}
    assert after["spec"]["matches"] == before["spec"]["matches"] and after["spec"]["service"] == rt.NAME
    assert before == rt.traffic_split(NS)


def test_relative_weights_read_as_percent() -> None:
    obj = rt.traffic_split(NS)
    obj["spec"]["backends"] = [{"service": rt.HIER, "weight": 2.5}, {"service": rt.FLAT, "weight": 7.5}]
    assert ROUTER.read_routes(obj).weight == 25


@pytest.mark.parametrize(
    ("backends", "detail"),
    [
        ([{"service": rt.FLAT, "weight": 100}], f"no backend for {rt.HIER}"),
        ([], f"no backend for {rt.FLAT}; no backend for {rt.HIER}"),
        (
            [
                {"service": rt.FLAT, "weight": 50},
                {"service": rt.HIER, "weight": 0},
                {"service": rt.HIER, "weight": 0},
            ],
            f"2 backends for Service {rt.HIER}",
        ),
        (
            [
                {"service": rt.FLAT, "weight": 90},
                {"service": rt.HIER, "weight": 5},
                {"service": "hal9-v3", "weight": 5},
            ],
            "other backends hal9-v3",
        ),
    ],
)
def test_both_services_once_and_nothing_else(backends: list[dict[str, Any]], detail: str) -> None:
    obj = rt.traffic_split(NS)
    obj["spec"]["backends"] = backends
    for call in (ROUTER.read_routes, lambda o: ROUTER.set_routes(o, Routing(weight=1))):
        with pytest.raises(RouteProblem) as raised:
            call(obj)
        assert raised.value.reason == "RouteMisconfigured"
        assert raised.value.message == (
            f"{WHERE}: spec.backends must list Service {rt.FLAT} and Service {rt.HIER} once each and nothing "
            f"else; it has {detail}"
        )


def test_no_spec_is_misconfigured() -> None:
    with pytest.raises(RouteProblem, match="no backend for hal9-flat"):
        ROUTER.read_routes({"metadata": {"name": rt.NAME}})


@pytest.mark.parametrize(
    ("routing", "reason"),
    [
        (
            Routing(weight=0, mirror=100),
            "SMI TrafficSplit cannot mirror traffic: set spec.phases.shadow.mode to Proxy (the shadow "
            "proxy copies requests instead) or spec.phases.shadow.mirrorPercent to 0",
        ),
        (
            Routing(weight=5, targeting=(rt.INTERNAL,)),
            "SMI TrafficSplit cannot route by request header: remove spec.targeting",
        ),
    ],
)
def test_mirror_and_targeting_are_unsupported(routing: Routing, reason: str) -> None:
    assert ROUTER.unsupported(routing) == reason
    with pytest.raises(RouteProblem) as raised:
        ROUTER.set_routes(rt.traffic_split(NS), routing)
    assert (raised.value.reason, raised.value.message) == ("UnsupportedByRouter", f"{WHERE}: {reason}")


def test_weights_alone_are_supported() -> None:
    assert ROUTER.unsupported(Routing(weight=50)) is None
    assert ROUTER.unsupported(Routing(weight=50, targeting=None)) is None
    assert (
        ROUTER.set_routes(rt.traffic_split(NS), Routing(weight=50, targeting=None))["spec"]["backends"][1][
            "weight"
        ]
        == 50
    )


@given(sequence=st.lists(rt.weight_routings, min_size=1, max_size=6))
def test_properties(sequence: list[Routing]) -> None:
    original = rt.traffic_split(NS)
    obj = copy.deepcopy(original)
    for routing in sequence:
        obj = ROUTER.set_routes(obj, routing)
        assert ROUTER.read_routes(obj) == rt.observed(routing, ())
        assert ROUTER.set_routes(obj, routing) == obj
        assert rt.canonical(rt.blank_smi(obj)) == rt.canonical(rt.blank_smi(original))
