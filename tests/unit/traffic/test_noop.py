"""The no-op router: the phase machine's test double, so it must behave like a real router."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration.traffic import (
    TARGETING_PREFIX,
    Backends,
    NoopRouter,
    ObservedRouting,
    RouteProblem,
    Routing,
)
from tests.support import traffic_objects as rt


def test_route_object_reads_back() -> None:
    router = NoopRouter()
    obj = router.route_object(weight=5, mirror=100, targeting=["internal-users"])
    assert obj["metadata"] == {"name": "noop", "namespace": "default"}
    assert router.read_routes(obj) == ObservedRouting(5, 100, (TARGETING_PREFIX + "internal-users",))


def test_set_routes_changes_only_spec() -> None:
    router = NoopRouter("hal9", Backends("hal9", rt.FLAT, rt.HIER))
    before = {**router.route_object(), "metadata": dict(rt.METADATA)}
    after = router.set_routes(before, Routing(weight=10, mirror=0, targeting=(rt.BETA, rt.CLI)))
    assert after == {
        "metadata": rt.METADATA,
        "spec": {
            "weight": 10,
            "mirror": 0,
            "targeting": [TARGETING_PREFIX + "beta", TARGETING_PREFIX + "legacy-clients"],
        },
    }
    assert before["spec"] == {"weight": 0, "mirror": 0, "targeting": []}
    kept = router.set_routes(after, Routing(weight=25, targeting=None))
    assert router.read_routes(kept) == ObservedRouting(
        25, 0, (TARGETING_PREFIX + "beta", TARGETING_PREFIX + "legacy-clients")
    )


def test_empty_spec_reads_as_all_flat() -> None:
    assert NoopRouter().read_routes({"spec": {}}) == ObservedRouting(0, 0, ())


def test_only_a_missing_spec_is_a_problem() -> None:
    router = NoopRouter()
    assert router.unsupported(Routing(weight=1, mirror=100, targeting=rt.RULES)) is None
    for call in (router.read_routes, lambda o: router.set_routes(o, Routing(weight=1))):
        with pytest.raises(RouteProblem) as raised:
            call({"metadata": {"name": "noop"}})
        assert (raised.value.reason, raised.value.message) == (
            "RouteMisconfigured",
            "NoopRoute default/noop has no spec",
        )


@given(sequence=st.lists(rt.routings, min_size=1, max_size=6))
def test_properties(sequence: list[Routing]) -> None:
    router = NoopRouter()
    obj, targeting = router.route_object(), ()
    for routing in sequence:
        obj = router.set_routes(obj, routing)
        if routing.targeting is not None:
            targeting = tuple(TARGETING_PREFIX + t.name for t in routing.targeting)
        assert router.read_routes(obj) == rt.observed(routing, targeting)
        assert router.set_routes(obj, routing) == obj
        assert obj["metadata"] == {"name": "noop", "namespace": "default"}
