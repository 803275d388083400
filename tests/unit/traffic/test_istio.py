"""The Istio router: weights, mirror, targeting routes on a VirtualService, and nothing else."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration import models
from hal9_migration.traffic import TARGETING_PREFIX, Backends, IstioRouter, RouteProblem, Routing
from tests.support import traffic_objects as rt

NS = "hal9"
BACKENDS = Backends(NS, rt.FLAT, rt.HIER)
FLAT_HOST = f"{rt.FLAT}.{NS}.svc.cluster.local"


def router(*routes: str) -> IstioRouter:
    return IstioRouter(models.IstioRouter(virtual_service=rt.NAME, routes=list(routes)), BACKENDS)


def http(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """HTTP routes by name (unnamed ones as #index)."""
    return {r.get("name", f"#{i}"): r for i, r in enumerate(obj["spec"]["http"])}


def weights(route: dict[str, Any]) -> list[tuple[str, int]]:
    return [(e["destination"]["host"], e.get("weight")) for e in route["route"]]


def problem(call: Any, *args: Any) -> RouteProblem:
    with pytest.raises(RouteProblem) as raised:
        call(*args)
    return raised.value


# --- weights ---------------------------------------------------------------------------------------


def test_reads_the_fixture() -> None:
    observed = router("primary").read_routes(rt.virtual_service(NS))
    assert (observed.weight, observed.mirror, observed.targeting) == (0, 0, ())


def test_sets_weights_on_the_named_route_only() -> None:
    before = rt.virtual_service(NS)
    after = router("primary").set_routes(before, Routing(weight=10))
    assert weights(http(after)["primary"]) == [(FLAT_HOST, 90), (rt.HIER, 10)]
    # every other key of the destinations is kept: subset, port, per-destination headers
    assert after["spec"]["http"][1]["route"][0]["destination"]["subset"] == "v0"
    assert after["spec"]["http"][1]["route"][1]["headers"] == {
        "response": {"add": {"x-backend": "hierarchical"}}
    }
    assert http(after)["#2"] == http(before)["#2"]  # an unnamed route to both Services is not named
    assert before == rt.virtual_service(NS)  # the input is never changed


def test_no_names_manages_every_route_to_either_service() -> None:
    obj = rt.virtual_service(NS)
    assert router().read_routes(obj).weight is None  # primary at 0, the unnamed route at 10
    after = router().set_routes(obj, Routing(weight=25))
    assert weights(http(after)["#2"]) == [(f"{rt.FLAT}.{NS}", 75), (f"{rt.HIER}.{NS}.svc", 25)]
    assert router().read_routes(after).weight == 25


@pytest.mark.parametrize(
    ("host", "ours"),
    [
        (rt.HIER, True),
        (f"{rt.HIER}.{NS}", True),
        (f"{rt.HIER}.{NS}.svc", True),
        (f"{rt.HIER}.{NS}.svc.cluster.local", True),
        (f"{rt.HIER}.{NS}.svc.corp.example", True),
        (f"{rt.HIER}.other", False),
        (f"{rt.HIER}.{NS}.svc.", False),
        (f"{rt.HIER}-v2", False),
    ],
)
def test_host_forms(host: str, ours: bool) -> None:
    obj = rt.virtual_service(NS)
    obj["spec"]["http"][1]["route"][1]["destination"]["host"] = host
    if ours:
        assert router("primary").read_routes(router("primary").set_routes(obj, Routing(weight=3))).weight == 3
    else:
        assert problem(router("primary").read_routes, obj).reason == "RouteMisconfigured"


def test_missing_weight_reads_as_zero() -> None:
    obj = rt.virtual_service(NS)
    del obj["spec"]["http"][1]["route"][1]["weight"]
    obj["spec"]["http"][1]["route"][0]["weight"] = 60
    assert router("primary").read_routes(obj).weight == 0


# --- mirror ----------------------------------------------------------------------------------------


def test_mirror_to_the_hierarchical_destination() -> None:
    obj = rt.virtual_service(NS)
    obj["spec"]["http"][1]["route"][1]["destination"]["subset"] = "v1"
    after = router("primary").set_routes(obj, Routing(weight=0, mirror=100))
    primary = http(after)["primary"]
    assert primary["mirror"] == {"host": rt.HIER, "port": {"number": 8080}, "subset": "v1"}
    assert primary["mirrorPercentage"] == {"value": 100.0}
    assert router("primary").read_routes(after).mirror == 100
    back = router("primary").set_routes(after, Routing(weight=0, mirror=0))
    assert "mirror" not in http(back)["primary"] and "mirrorPercentage" not in http(back)["primary"]
    assert back == router("primary").set_routes(obj, Routing(weight=0))


def test_mirror_without_percentage_means_everything() -> None:
    obj = rt.virtual_service(NS)
    obj["spec"]["http"][1]["mirror"] = {"host": f"{rt.HIER}.{NS}.svc.cluster.local"}
    assert router("primary").read_routes(obj).mirror == 100
    obj["spec"]["http"][1]["mirrorPercentage"] = {"value": 12.5}
    assert router("primary").read_routes(obj).mirror == 12


def test_mirrors_disagreeing_read_as_none() -> None:
    obj = router().set_routes(rt.virtual_service(NS), Routing(weight=5, mirror=40))
    obj["spec"]["http"][2]["mirrorPercentage"] = {"value": 30.0}
    assert router().read_routes(obj).mirror is None


def test_a_foreign_mirror_is_the_users() -> None:
    obj = rt.virtual_service(NS)
    foreign = {"host": "audit.observability.svc.cluster.local"}
    obj["spec"]["http"][1].update(mirror=foreign, mirrorPercentage={"value": 5.0})
    obj["spec"]["http"][1]["mirrors"] = [{"destination": {"host": "audit-2"}}]
    obj["spec"]["http"][1]["mirrorPercent"] = 5
    after = router("primary").set_routes(obj, Routing(weight=5, mirror=0))
    for key in ("mirror", "mirrorPercentage", "mirrors", "mirrorPercent"):
        assert http(after)["primary"][key] == obj["spec"]["http"][1][key]
    assert router("primary").read_routes(after).mirror == 0
    found = problem(router("primary").set_routes, obj, Routing(weight=0, mirror=100))
    assert found.reason == "RouteMisconfigured"
    assert "route 'primary' already mirrors to audit.observability.svc.cluster.local" in found.message


# --- problems --------------------------------------------------------------------------------------


def test_named_routes_missing() -> None:
    found = problem(router("primary", "canary", "beta").read_routes, rt.virtual_service(NS))
    assert found.reason == "RouteNotFound"
    assert found.message == f"VirtualService {NS}/{rt.NAME} has no HTTP route named 'canary', 'beta'"


@pytest.mark.parametrize("spec", [{}, {"http": []}, {"http": [{"route": [{"destination": {"host": "x"}}]}]}])
def test_no_route_to_either_service(spec: dict[str, Any]) -> None:
    obj = {"metadata": {"name": rt.NAME}, "spec": spec}
    found = problem(router().set_routes, obj, Routing(weight=1))
    assert found.reason == "RouteMisconfigured"
    assert found.message == (
        f"VirtualService {NS}/{rt.NAME} has no HTTP route with a destination to Service "
        f"{rt.FLAT} or {rt.HIER}"
    )


@pytest.mark.parametrize(
    ("index", "change", "label", "detail"),
    [
        (1, lambda r: r["route"].pop(1), "HTTP route 'primary'", f"no destination to {rt.HIER}"),
        (1, lambda r: r["route"].pop(0), "HTTP route 'primary'", f"no destination to {rt.FLAT}"),
        (
            1,
            lambda r: r["route"].append({"destination": {"host": "hal9-canary"}, "weight": 0}),
            "HTTP route 'primary'",
            "other destinations hal9-canary",
        ),
        (
            2,
            lambda r: r["route"].append({"destination": {"host": rt.FLAT}, "weight": 0}),
            "unnamed HTTP route[2]",
            f"2 destinations to Service {rt.FLAT}",
        ),
    ],
)
def test_managed_route_needs_one_destination_of_each(
    index: int, change: Any, label: str, detail: str
) -> None:
    obj = rt.virtual_service(NS)
    change(obj["spec"]["http"][index])
    found = problem(router().read_routes, obj)
    assert found.reason == "RouteMisconfigured"
    assert f"VirtualService {NS}/{rt.NAME}: {label} must route" in found.message
    assert detail in found.message


def test_weights_out_of_range_are_a_bug() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        router("primary").set_routes(rt.virtual_service(NS), Routing(weight=101))


def test_istio_supports_everything() -> None:
    assert router().unsupported(Routing(weight=5, mirror=100, targeting=rt.RULES)) is None


# --- targeting -------------------------------------------------------------------------------------


def test_targeting_routes_go_before_the_one_managed_route() -> None:
    after = router("primary").set_routes(
        rt.virtual_service(NS), Routing(weight=5, targeting=(rt.INTERNAL, rt.TENANT))
    )
    names = [r.get("name") for r in after["spec"]["http"]]
    assert names == [
        "health",
        TARGETING_PREFIX + "internal-users",
        TARGETING_PREFIX + "tenant-override",
        "primary",
        None,
        "audit",
        "legacy",
    ]
    internal, tenant, primary = after["spec"]["http"][1:4]
    assert internal["match"] == [
        {
            "uri": {"prefix": "/api"},
            "headers": {"x-tenant": {"exact": "acme"}, "x-hal9-user-group": {"exact": "internal"}},
        },
        {
            "uri": {"prefix": "/v2"},
            "method": {"exact": "GET"},
            "headers": {"x-hal9-user-group": {"exact": "internal"}},
        },
    ]
    assert internal["route"] == [
        {
            "destination": {"host": rt.HIER, "port": {"number": 8080}},
            "headers": primary["route"][1]["headers"],
        }
    ]
    assert tenant["match"][0]["headers"] == {"x-tenant": {"exact": "globex"}}  # the rule's condition wins
    assert tenant["route"] == [{k: v for k, v in primary["route"][0].items() if k != "weight"}]
    for key in ("timeout", "retries", "headers", "fault", "corsPolicy"):
        assert internal[key] == primary[key]
    assert router("primary").read_routes(after).targeting == (
        TARGETING_PREFIX + "internal-users",
        TARGETING_PREFIX + "tenant-override",
    )


def test_targeting_routes_carry_no_mirror() -> None:
    after = router("primary").set_routes(
        rt.virtual_service(NS), Routing(weight=0, mirror=100, targeting=(rt.BETA,))
    )
    beta = http(after)[TARGETING_PREFIX + "beta"]
    assert not {"mirror", "mirrorPercentage", "mirrors"} & beta.keys()
    assert beta["match"][0]["headers"]["x-hal9-beta"] == {"prefix": "yes.v1+"}


def test_targeting_names_carry_the_route_when_several_are_managed() -> None:
    after = router().set_routes(rt.virtual_service(NS), Routing(weight=5, targeting=(rt.CLI,)))
    names = [r.get("name") for r in after["spec"]["http"]]
    assert names == [
        "health",
        TARGETING_PREFIX + "legacy-clients@primary",
        "primary",
        TARGETING_PREFIX + "legacy-clients@1",
        None,
        "audit",
        "legacy",
    ]
    stream = after["spec"]["http"][3]
    assert stream["match"] == [
        {"uri": {"prefix": "/stream"}, "headers": {"user-agent": {"regex": "^hal9-cli/1\\..*"}}}
    ]
    assert stream["route"] == [{"destination": {"host": f"{rt.FLAT}.{NS}"}}]
    assert stream["rewrite"] == {"uri": "/"}


def test_a_route_without_match_gets_one_for_the_headers() -> None:
    obj = rt.virtual_service(NS)
    del obj["spec"]["http"][1]["match"]
    after = router("primary").set_routes(obj, Routing(weight=5, targeting=(rt.INTERNAL,)))
    assert http(after)[TARGETING_PREFIX + "internal-users"]["match"] == [
        {"headers": {"x-hal9-user-group": {"exact": "internal"}}}
    ]


def test_targeting_none_leaves_targeting_routes_and_empty_removes_them() -> None:
    with_rules = router().set_routes(rt.virtual_service(NS), Routing(weight=5, targeting=(rt.CLI, rt.BETA)))
    kept = router().set_routes(with_rules, Routing(weight=50, targeting=None))
    targeting = [r for r in kept["spec"]["http"] if r.get("name", "").startswith(TARGETING_PREFIX)]
    assert targeting == [
        r for r in with_rules["spec"]["http"] if r.get("name", "").startswith(TARGETING_PREFIX)
    ]
    assert router().read_routes(kept).weight == 50  # targeting routes are never managed themselves
    removed = router().set_routes(kept, Routing(weight=50, targeting=()))
    assert removed == router().set_routes(rt.virtual_service(NS), Routing(weight=50))


def test_idempotent_and_user_parts_kept_on_a_rich_sequence() -> None:
    obj = rt.virtual_service(NS)
    for routing in (
        Routing(weight=0, mirror=100, targeting=(rt.INTERNAL,)),
        Routing(weight=5, targeting=(rt.TENANT, rt.INTERNAL)),
        Routing(weight=90, targeting=None),
    ):
        once = router().set_routes(obj, routing)
        assert router().set_routes(once, routing) == once
        assert rt.canonical(rt.blank_istio(once, NS)) == rt.canonical(
            rt.blank_istio(rt.virtual_service(NS), NS)
        )
        assert once["metadata"] == rt.METADATA
        obj = once


# --- properties ------------------------------------------------------------------------------------


@given(routes=st.sampled_from([(), ("primary",)]), sequence=st.lists(rt.routings, min_size=1, max_size=6))
def test_properties(routes: tuple[str, ...], sequence: list[Routing]) -> None:
    r = router(*routes)
    original = rt.virtual_service(NS)
    user_parts = rt.canonical(rt.blank_istio(original, NS))
    suffixes = ("",) if routes else ("@primary", "@1")
    obj, targeting = copy.deepcopy(original), ()
    for routing in sequence:
        obj = r.set_routes(obj, routing)
        if routing.targeting is not None:
            targeting = tuple(TARGETING_PREFIX + t.name + s for s in suffixes for t in routing.targeting)
        assert r.read_routes(obj) == rt.observed(routing, targeting)
        assert r.set_routes(obj, routing) == obj
        assert rt.canonical(rt.blank_istio(obj, NS)) == user_parts
    assert original == rt.virtual_service(NS)
