"""The Gateway API router: backendRef weights, its RequestMirror filter and targeting rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration import models
from hal9_migration.traffic import TARGETING_PREFIX, Backends, GatewayAPIRouter, RouteProblem, Routing
from tests.support import traffic_objects as rt
from tests.support.routes import sample_route

NS = "hal9"
ROUTER = GatewayAPIRouter(models.GatewayAPIRouter(http_route=rt.NAME), Backends(NS, rt.FLAT, rt.HIER))
WHERE = f"HTTPRoute {NS}/{rt.NAME}"
OUR_MIRROR = {"group": "", "kind": "Service", "name": rt.HIER, "port": 8080}


def rules(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r.get("name", f"#{i}"): r for i, r in enumerate(obj["spec"]["rules"])}


def weights(rule: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(ref["name"], ref.get("weight")) for ref in rule["backendRefs"]]


def problem(obj: dict[str, Any], routing: Routing | None = None) -> RouteProblem:
    call: Any = ROUTER.read_routes if routing is None else lambda o: ROUTER.set_routes(o, routing)
    with pytest.raises(RouteProblem) as raised:
        call(obj)
    return raised.value


def single_rule() -> dict[str, Any]:
    """The fixture with only the ``api`` rule managed (the unnamed one goes elsewhere)."""
    obj = rt.http_route(NS)
    del obj["spec"]["rules"][2]
    return obj


# --- weights ---------------------------------------------------------------------------------------


def test_reads_the_fixture() -> None:
    observed = ROUTER.read_routes(rt.http_route(NS))
    assert (observed.weight, observed.mirror, observed.targeting) == (0, 0, ())


def test_sets_weights_on_every_rule_to_either_service() -> None:
    before = rt.http_route(NS)
    after = ROUTER.set_routes(before, Routing(weight=10))
    assert weights(rules(after)["api"]) == [(rt.FLAT, 90), (rt.HIER, 10)]
    assert weights(rules(after)["#2"]) == [(rt.FLAT, 90), (rt.HIER, 10)]
    assert (
        rules(after)["api"]["backendRefs"][0]["filters"]
        == before["spec"]["rules"][1]["backendRefs"][0]["filters"]
    )
    assert (
        rules(after)["health"] == rules(before)["health"]
        and rules(after)["legacy"] == rules(before)["legacy"]
    )
    assert before == rt.http_route(NS)


def test_absent_weight_is_one() -> None:
    obj = rt.http_route(NS)
    obj["spec"]["rules"][2]["backendRefs"][0]["weight"] = 3  # flat 3, hierarchical absent (= 1)
    del obj["spec"]["rules"][2]["backendRefs"][1]["weight"]
    del obj["spec"]["rules"][1]
    assert ROUTER.read_routes(obj).weight == 25


def test_rules_that_disagree_read_as_none() -> None:
    obj = ROUTER.set_routes(rt.http_route(NS), Routing(weight=10))
    obj["spec"]["rules"][2]["backendRefs"][1]["weight"] = 20
    assert ROUTER.read_routes(obj).weight is None


@pytest.mark.parametrize(
    ("change", "ours"),
    [
        ({"kind": "Service", "group": ""}, True),
        ({"namespace": NS}, True),
        ({"namespace": "elsewhere"}, False),
        ({"kind": "ServiceImport", "group": "multicluster.x-k8s.io"}, False),
        ({"group": "example.com"}, False),
    ],
)
def test_which_backend_refs_are_ours(change: dict[str, str], ours: bool) -> None:
    obj = single_rule()
    obj["spec"]["rules"][1]["backendRefs"][1].update(change)
    if ours:
        assert ROUTER.read_routes(ROUTER.set_routes(obj, Routing(weight=7))).weight == 7
    else:
        assert problem(obj).message.endswith(
            f"it has no backendRef to {rt.HIER}; other backendRefs {rt.HIER}"
        )


# --- mirror ----------------------------------------------------------------------------------------


def test_mirror_filter_beside_the_users() -> None:
    before = rt.http_route(NS)
    after = ROUTER.set_routes(before, Routing(weight=0, mirror=100))
    api = rules(after)["api"]
    assert api["filters"][:2] == before["spec"]["rules"][1]["filters"]  # the user's mirror stays
    assert api["filters"][2] == {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": OUR_MIRROR, "percent": 100},
    }
    assert rules(after)["#2"]["filters"] == [api["filters"][2]]
    assert ROUTER.read_routes(after).mirror == 100
    lower = ROUTER.set_routes(after, Routing(weight=0, mirror=30))
    assert [f["requestMirror"].get("percent") for f in rules(lower)["api"]["filters"][1:]] == [5, 30]
    back = ROUTER.set_routes(lower, Routing(weight=0, mirror=0))
    assert back == ROUTER.set_routes(before, Routing(weight=0))
    assert "filters" not in rules(back)["#2"]


def test_our_mirror_keeps_its_position() -> None:
    obj = ROUTER.set_routes(rt.http_route(NS), Routing(weight=0, mirror=100))
    filters = obj["spec"]["rules"][1]["filters"]
    filters.insert(0, filters.pop())  # a person moved it first
    again = ROUTER.set_routes(obj, Routing(weight=0, mirror=60))
    assert again["spec"]["rules"][1]["filters"][0]["requestMirror"]["percent"] == 60


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [
        ({"percent": 40}, 40),
        ({"fraction": {"numerator": 1, "denominator": 4}}, 25),
        ({"fraction": {"numerator": 7}}, 7),
        ({}, 100),
    ],
)
def test_reads_percent_fraction_or_everything(mirror: dict[str, Any], expected: int) -> None:
    obj = single_rule()
    obj["spec"]["rules"][1]["filters"].append(
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": rt.HIER, "port": 8080}, **mirror}}
    )
    assert ROUTER.read_routes(obj).mirror == expected


def test_no_room_for_our_mirror() -> None:
    obj = single_rule()
    obj["spec"]["rules"][1]["filters"] += [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": f"audit-{i}", "port": 80}}}
        for i in range(14)
    ]
    assert len(obj["spec"]["rules"][1]["filters"]) == 16
    found = problem(obj, Routing(weight=0, mirror=100))
    assert found.reason == "RouteMisconfigured"
    assert found.message == (
        f"{WHERE}: rule 'api' already has 16 filters, the most an HTTPRoute rule may have, so the operator "
        "cannot add its RequestMirror filter"
    )
    assert (
        ROUTER.set_routes(obj, Routing(weight=3))["spec"]["rules"][1]["filters"]
        == obj["spec"]["rules"][1]["filters"]
    )


# --- problems --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", [{}, {"rules": []}, {"rules": [{"backendRefs": [{"name": "x", "port": 1}]}]}]
)
def test_no_rule_to_either_service(spec: dict[str, Any]) -> None:
    found = problem({"metadata": {"name": rt.NAME}, "spec": spec}, Routing(weight=1))
    assert found.reason == "RouteMisconfigured"
    assert found.message == f"{WHERE} has no rule with a backendRef to Service {rt.FLAT} or {rt.HIER}"


@pytest.mark.parametrize(
    ("index", "change", "label", "detail"),
    [
        (1, lambda r: r["backendRefs"].pop(1), "rule 'api'", f"no backendRef to {rt.HIER}"),
        (2, lambda r: r["backendRefs"].pop(0), "unnamed rule[2]", f"no backendRef to {rt.FLAT}"),
        (
            2,
            lambda r: r["backendRefs"].append({"name": "hal9-canary", "port": 80}),
            "unnamed rule[2]",
            "other backendRefs hal9-canary",
        ),
        (
            1,
            lambda r: r["backendRefs"].append({"name": rt.HIER, "port": 9090}),
            "rule 'api'",
            f"2 backendRefs to Service {rt.HIER}",
        ),
    ],
)
def test_managed_rule_needs_one_backend_of_each(index: int, change: Any, label: str, detail: str) -> None:
    obj = rt.http_route(NS)
    change(obj["spec"]["rules"][index])
    found = problem(obj)
    assert found.reason == "RouteMisconfigured"
    assert found.message.startswith(f"{WHERE}: {label} must have exactly one backendRef to Service {rt.FLAT}")
    assert detail in found.message


def test_gateway_supports_everything() -> None:
    assert ROUTER.unsupported(Routing(weight=5, mirror=100, targeting=rt.RULES)) is None


# --- targeting -------------------------------------------------------------------------------------


def test_targeting_rules_before_the_one_managed_rule() -> None:
    after = ROUTER.set_routes(single_rule(), Routing(weight=5, mirror=50, targeting=(rt.INTERNAL, rt.TENANT)))
    assert [r.get("name") for r in after["spec"]["rules"]] == [
        "health",
        TARGETING_PREFIX + "internal-users",
        TARGETING_PREFIX + "tenant-override",
        "api",
        "legacy",
    ]
    internal, tenant, api = after["spec"]["rules"][1:4]
    assert internal["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/api"},
            "headers": [
                {"name": "x-tenant", "value": "acme"},
                {"name": "x-hal9-user-group", "type": "Exact", "value": "internal"},
            ],
        },
        {
            "path": {"type": "PathPrefix", "value": "/v2"},
            "method": "GET",
            "headers": [{"name": "x-hal9-user-group", "type": "Exact", "value": "internal"}],
        },
    ]
    assert internal["backendRefs"] == [{"name": rt.HIER, "port": 8080, "weight": 1}]
    assert tenant["backendRefs"] == [{**api["backendRefs"][0], "weight": 1}]  # namespace and filters kept
    assert tenant["matches"][0]["headers"] == [{"name": "x-tenant", "type": "Exact", "value": "globex"}]
    assert internal["filters"] == api["filters"][:2]  # header modifier and the user's mirror, not ours
    assert internal["timeouts"] == api["timeouts"]
    assert ROUTER.read_routes(after).targeting == (
        TARGETING_PREFIX + "internal-users",
        TARGETING_PREFIX + "tenant-override",
    )


def test_targeting_names_carry_the_rule_index_when_several_are_managed() -> None:
    after = ROUTER.set_routes(rt.http_route(NS), Routing(weight=5, targeting=(rt.BETA, rt.CLI)))
    assert [r.get("name") for r in after["spec"]["rules"]] == [
        "health",
        TARGETING_PREFIX + "beta-0",
        TARGETING_PREFIX + "legacy-clients-0",
        "api",
        TARGETING_PREFIX + "beta-1",
        TARGETING_PREFIX + "legacy-clients-1",
        None,
        "legacy",
    ]
    beta, cli = after["spec"]["rules"][4:6]
    assert beta["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/stream"},
            "headers": [{"name": "x-hal9-beta", "type": "RegularExpression", "value": "^yes\\.v1\\+.*"}],
        }
    ]
    assert cli["matches"][0]["headers"] == [
        {"name": "user-agent", "type": "RegularExpression", "value": "^hal9-cli/1\\..*"}
    ]
    assert cli["backendRefs"] == [{"name": rt.FLAT, "port": 8080, "weight": 1}]
    assert "filters" not in cli and "timeouts" not in cli


def test_a_rule_without_matches_gets_the_default_one() -> None:
    obj = single_rule()
    del obj["spec"]["rules"][1]["matches"]
    after = ROUTER.set_routes(obj, Routing(weight=5, targeting=(rt.INTERNAL,)))
    assert after["spec"]["rules"][1]["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"name": "x-hal9-user-group", "type": "Exact", "value": "internal"}],
        }
    ]


@pytest.mark.parametrize(
    ("match", "header"),
    [
        ({"exact": ""}, {"type": "RegularExpression", "value": "^$"}),
        ({"prefix": ""}, {"type": "RegularExpression", "value": ".*"}),
        (
            {"prefix": "a.b*c(d)[e]{f}|g?h^i$j\\"},
            {"type": "RegularExpression", "value": "^a\\.b\\*c\\(d\\)\\[e\\]\\{f\\}\\|g\\?h\\^i\\$j\\\\.*"},
        ),
        ({"regex": ""}, {"type": "RegularExpression", "value": "^$"}),
    ],
)
def test_header_values_the_crd_accepts(match: dict[str, str], header: dict[str, str]) -> None:
    target = rt.rule("edge", "Flat", x_edge=match)
    after = ROUTER.set_routes(single_rule(), Routing(weight=5, targeting=(target,)))
    assert after["spec"]["rules"][1]["matches"][1]["headers"] == [{"name": "x-edge", **header}]


def test_targeting_none_leaves_rules_and_empty_removes_them() -> None:
    with_rules = ROUTER.set_routes(rt.http_route(NS), Routing(weight=5, targeting=(rt.CLI,)))
    kept = ROUTER.set_routes(with_rules, Routing(weight=50, targeting=None))
    assert [r for r in kept["spec"]["rules"] if r.get("name", "").startswith(TARGETING_PREFIX)] == [
        r for r in with_rules["spec"]["rules"] if r.get("name", "").startswith(TARGETING_PREFIX)
    ]
    assert ROUTER.set_routes(kept, Routing(weight=50)) == ROUTER.set_routes(
        rt.http_route(NS), Routing(weight=50)
    )


# --- the CRD's limits ------------------------------------------------------------------------------


def many(count: int) -> tuple[models.TargetingRule, ...]:
    return tuple(rt.rule(f"group-{i}", "Hierarchical", x_hal9_group={"exact": str(i)}) for i in range(count))


def test_at_most_sixteen_rules() -> None:
    assert (
        len(ROUTER.set_routes(rt.http_route(NS), Routing(weight=5, targeting=many(6)))["spec"]["rules"]) == 16
    )
    found = problem(rt.http_route(NS), Routing(weight=5, targeting=many(7)))
    assert found.reason == "RouteMisconfigured"
    assert found.message == (
        f"{WHERE} would need 18 rules with 7 targeting rules for each of 2 managed rules; an HTTPRoute holds "
        "at most 16: remove targeting rules or split the HTTPRoute"
    )


def test_at_most_128_matches() -> None:
    obj = single_rule()
    obj["spec"]["rules"][1]["matches"] = [
        {"path": {"type": "PathPrefix", "value": f"/{i}"}} for i in range(40)
    ]
    ROUTER.set_routes(obj, Routing(weight=5, targeting=many(2)))  # 42 + 80 = 122
    found = problem(obj, Routing(weight=5, targeting=many(3)))  # 42 + 120 = 162
    assert found.message.startswith(
        f"{WHERE} would need 162 matches with 3 targeting rules for each of 1 managed"
    )
    assert "at most 128 (64 per rule)" in found.message


def test_at_most_sixteen_headers_per_match() -> None:
    obj = single_rule()
    obj["spec"]["rules"][1]["matches"][0]["headers"] = [{"name": f"x-{i}", "value": "1"} for i in range(16)]
    found = problem(obj, Routing(weight=5, targeting=(rt.INTERNAL,)))
    assert found.message == (
        f"{WHERE}: targeting rule 'internal-users' on rule 'api' would need 17 header matches in one match; "
        "HTTPRoute allows 16"
    )


def test_rule_names_fit_the_crd() -> None:
    long_name = ".".join(["a" * 61] * 4)  # 247 characters: fine as a targeting rule name
    target = rt.rule(long_name, "Flat", x_a={"exact": "1"})
    found = problem(rt.http_route(NS), Routing(weight=5, targeting=(target,)))
    assert found.reason == "RouteMisconfigured"
    assert f"for targeting rule {long_name!r} would be longer than 253 characters" in found.message


# --- properties ------------------------------------------------------------------------------------


@given(single=st.booleans(), sequence=st.lists(rt.routings, min_size=1, max_size=6))
def test_properties(single: bool, sequence: list[Routing]) -> None:
    original = single_rule() if single else rt.http_route(NS)
    user_parts = rt.canonical(rt.blank_gateway(original))
    suffixes = ("",) if single else ("-0", "-1")
    obj, targeting = copy.deepcopy(original), ()
    for routing in sequence:
        obj = ROUTER.set_routes(obj, routing)
        if routing.targeting is not None:
            targeting = tuple(TARGETING_PREFIX + t.name + s for s in suffixes for t in routing.targeting)
        assert ROUTER.read_routes(obj) == rt.observed(routing, targeting)
        assert ROUTER.set_routes(obj, routing) == obj
        assert rt.canonical(rt.blank_gateway(obj)) == user_parts


def test_named_rules_are_the_only_ones_managed_and_a_missing_name_is_not_found() -> None:
    backends = Backends("ns", "hal9-flat", "hal9-hierarchical")
    obj = sample_route("gatewayAPI")  # its "health" rule sends to flat only, and stays so
    pinned = GatewayAPIRouter(models.GatewayAPIRouter(http_route="hal9", rules=["primary"]), backends)
    out = pinned.set_routes(obj, Routing(10))
    assert out["spec"]["rules"][0] == obj["spec"]["rules"][0]
    assert pinned.read_routes(out).weight == 10
    every = GatewayAPIRouter(models.GatewayAPIRouter(http_route="hal9"), backends)
    with pytest.raises(RouteProblem) as misconfigured:
        every.read_routes(obj)
    assert misconfigured.value.reason == "RouteMisconfigured" and "health" in misconfigured.value.message
    missing = GatewayAPIRouter(models.GatewayAPIRouter(http_route="hal9", rules=["nope"]), backends)
    with pytest.raises(RouteProblem) as not_found:
        missing.read_routes(obj)
    assert not_found.value.reason == "RouteNotFound" and "'nope'" in not_found.value.message
