"""Shadow through the shadow proxy, in the phase machine (pure): the proxy is made before traffic goes
through it, traffic goes through it only while it is ready, the gate reads output parity, and leaving
Shadow takes the route off the proxy before the proxy is removed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hal9_migration import analysis
from hal9_migration.controls import Verb, annotation
from hal9_migration.shadowproxy import proxy_name
from tests.support.machine import World
from tests.support.manifests import load_sample

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
PROXY = proxy_name("m")
PARITY = "hal9_shadow_divergence_score_total"
PROXY_P99 = 'bucket{namespace="hal9",migration="m",system="hierarchical"}'
PROXY_FLAT_P99 = 'bucket{namespace="hal9",migration="m",system="flat"}'


def spec(analysed: bool = False, **changes: Any) -> dict[str, Any]:
    base = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    base.pop("analysis")
    base["phases"] = {
        "shadow": {"duration": "6s"},
        "canary": {"steps": [1, 5], "stepDuration": "4s"},
    }
    if analysed:
        base["analysis"] = {"prometheus": {"address": "http://prometheus:9090"}, "interval": "2s"}
    base["progressDeadline"] = "1m"
    base["targetPhase"] = "Canary"
    base.pop("trafficSplit")
    base.update(changes)
    return base


def detours(world: World, seconds: float) -> list[tuple[int, str | None]]:
    """(weight, detour) each time the route object changes, over ``seconds`` of passes."""
    seen: list[tuple[int, str | None]] = []
    for _ in range(int(seconds * 2)):
        world.step(0.5)
        now = (world.route.weight, world.route.detour)
        if world.route.record and (not seen or seen[-1] != now):
            seen.append(now)
    return seen


def reasons(world: World) -> list[str]:
    return [h["reason"] for h in world.status.get("history", [])]


def test_traffic_goes_through_the_proxy_only_once_it_is_ready_and_leaves_it_before_it_goes() -> None:
    world = World(spec(), T0)
    first = world.step()
    assert first.proxy == "apply"  # made before the migration enters Shadow
    assert world.status["shadow"]["message"] == f"Creating the shadow proxy {PROXY}"
    assert detours(world, 30) == [(0, None), (0, PROXY), (1, None), (5, None)]
    assert world.proxy.actions[-1] == "delete" and not world.proxy.exists
    assert world.route.mirror == 0  # the proxy copies requests; no mesh mirror on the way
    history = reasons(world)
    assert history.index("Started") < history.index("ShadowProxyRouted") < history.index("Advanced")
    assert "shadow" not in world.status  # nothing left to say once the proxy is gone
    assert world.condition("Ready") == ("True", "TargetReached")


def test_the_proxy_is_deleted_only_after_the_route_no_longer_sends_to_it() -> None:
    world = World(spec(), T0)
    while world.status.get("phase") != "Canary":
        world.step(0.5)
        if world.proxy.actions and world.proxy.actions[-1] == "delete":
            raise AssertionError("deleted while the route object still sent to it")
    assert world.route.detour is None and world.proxy.exists  # the leaving pass wrote the route only
    assert world.status["shadow"]["message"].startswith("Removing the shadow proxy")
    left = world.now
    while world.proxy.exists:
        decision = world.step(0.5)
        assert decision.requeue_after is not None and decision.requeue_after <= 2
    # Envoy and the meshes take a moment to stop sending to it: it outlives the route change.
    assert (world.now - left).total_seconds() >= 10


def test_a_proxy_that_never_gets_ready_holds_shadow_with_traffic_straight_to_flat() -> None:
    world = World(spec(), T0)
    world.proxy.starts = False
    world.run(30, tick=0.5)
    assert world.route.detour is None and world.route.weight == 0
    shadow = world.status["shadow"]
    assert (shadow["ready"], shadow["routed"]) == (False, False)
    assert "no ready endpoint yet; traffic goes straight to flat" in shadow["message"]
    status, reason = world.condition("Reconciling")
    assert (status, reason) == ("True", "WaitingForGate")
    message = next(c for c in world.status["conditions"] if c["type"] == "Reconciling")["message"]
    assert "gate shadow-proxy" in message and "nothing is compared" in message


def test_a_proxy_that_stops_being_ready_is_bypassed_and_says_so() -> None:
    world = World(spec(phases={"shadow": {"duration": "1h"}}), T0)
    world.run(5, tick=0.5)
    assert world.route.detour == PROXY
    world.proxy.ready = False
    world.step(0.5)
    assert world.route.detour is None
    bypassed = world.status["history"][-1]
    assert bypassed["reason"] == "ShadowProxyBypassed"
    assert any(e.reason == "ShadowProxyBypassed" and e.type == "Warning" for e in world.decisions[-1].events)


def test_the_gate_reads_output_parity_from_the_proxy() -> None:
    values: dict[str, float | None] = {
        PARITY: 0.9,
        PROXY_P99: 40.0,
        PROXY_FLAT_P99: 40.0,
        "hal9_errors_total": 0.0,
    }
    provider = analysis.NoopProvider(values)
    world = World(spec(analysed=True), T0, metrics=provider)
    world.run(30, tick=0.5)
    assert world.status["phase"] == "Shadow"
    parity = next(c for c in world.status["analysis"]["checks"] if c["name"] == "output-parity")
    assert (parity["value"], parity["verdict"]) == (0.9, "Fail")
    assert parity["reason"] == "0.9 < 0.99 (phases.shadow.minOutputParity)"
    assert 'migration="m"' in parity["query"]
    assert world.status["health"]["parity"] == 0.9
    message = next(c for c in world.status["conditions"] if c["type"] == "Reconciling")["message"]
    assert "output-parity 0.9 < 0.99" in message
    assert world.status["analysis"]["notes"] == []  # parity is measured: no "not measured" note
    provider.values[PARITY] = 0.995
    world.run(10, tick=0.5)
    assert world.status["phase"] == "Canary"
    assert world.route.detour is None


def test_abort_in_shadow_takes_the_route_off_the_proxy_and_removes_it() -> None:
    world = World(spec(phases={"shadow": {"duration": "1h"}}), T0)
    world.run(5, tick=0.5)
    assert world.route.detour == PROXY
    world.annotations[annotation(Verb.ABORT)] = "a1"
    world.run(12, tick=0.5)
    assert (world.route.weight, world.route.detour) == (0, None)
    assert world.proxy.actions[-1] == "delete" and not world.proxy.exists


def test_mirror_mode_runs_no_proxy() -> None:
    world = World(spec(phases={"shadow": {"duration": "6s", "mode": "Mirror"}}), T0)
    assert detours(world, 20)[:2] == [(0, None), (1, None)]
    assert world.writes[0] == (0, 100)
    assert world.proxy.actions == [] and world.proxy.observed == 0
