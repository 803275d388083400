"""The plugin's views, rendered to plain text from statuses the decision core wrote and route objects
the real routers rendered."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console, RenderableType

from hal9_migration import plan, shadowproxy, timeline, traffic
from hal9_migration.kubectl import views
from hal9_migration.traffic.base import Routing
from tests.support.machine import World
from tests.support.routes import sample_route
from tests.unit.kubectl.test_summary import obj
from tests.unit.test_timeline import spec

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def text(renderable: RenderableType) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def route_at(world: World, weight: int, mirror: int = 0) -> dict[str, object]:
    model = plan.parse_spec(world.spec)
    assert not isinstance(model, str)
    router = traffic.router_for(model, "hal9", shadowproxy.proxy_name(world.name))
    return router.set_routes(sample_route("istio"), Routing(weight, mirror, ()))


def test_the_status_view_shows_the_timeline_the_wait_the_route_and_the_history() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=None), T0)
    world.run(1 + 10 + 5 + 2)  # started at 1 s; Shadow 10 s, Canary 1 for 5 s, then 2 s into Canary 2
    model = plan.parse_spec(world.spec)
    assert not isinstance(model, str)
    seen = views.route_seen(model, "hal9", world.name, route_at(world, 5))
    shown = text(views.status_view(obj(world), seen, world.now))
    assert re.search(r"✔\s+Shadow\s+mirror 100% \(mesh mirror\)\s+done", shown), shown
    assert re.search(r"▶\s+Canary\s+1% \[5%\] 10% 25%\s+since 2026-11-25T12:00:16Z", shown)
    assert re.search(r"-\s+RampUp\s+beyond the target", shown)
    bar = re.search(r"Wait\s+(━*)(─*)\s+2s of 5s", shown)
    assert bar is not None, shown
    assert (len(bar.group(1)), len(bar.group(2))) == (12, 18)  # 2 of 5 seconds of a 30-character bar
    assert "VirtualService hal9: flat 95%  hierarchical 5%  mirror 0%" in shown
    assert "(status says" not in shown
    assert re.search(r"Reconciling\s+True\s+WaitingForStep", shown)
    assert re.search(r"Advanced\s+operator\s+Canary step 2 \(5%\)", shown)


def test_a_route_object_changed_behind_the_operators_back_is_flagged() -> None:
    world = World(spec(targetPhase="Canary", trafficSplit=5), T0)
    world.run(40)
    model = plan.parse_spec(world.spec)
    assert not isinstance(model, str)
    shown = text(
        views.status_view(obj(world), views.route_seen(model, "hal9", "m", route_at(world, 50)), world.now)
    )
    assert "hierarchical 50%" in shown and "(status says 5%)" in shown
    missing = text(views.status_view(obj(world), views.route_seen(model, "hal9", "m", None), world.now))
    assert "VirtualService hal9: not found" in missing


def test_the_plan_lines_give_each_step_its_time_gate_and_targeting() -> None:
    model = plan.parse_spec(spec(targetPhase="Canary", trafficSplit=5))
    assert not isinstance(model, str)
    shown = text(views.plan_lines(timeline.plan(model, None, T0), T0))
    lines = shown.splitlines()
    assert lines[0] == "From not started (all traffic on flat) to Canary step 2 (5%): walks forward"
    assert re.match(
        r"  Shadow 1\s+0%   mirror 100%   at the earliest 2026-11-25T12:00:00Z \(\+0s\)", lines[1]
    )
    assert lines[2].strip() == "gate time: time only (no analysis is configured); held at least 10s"
    assert lines[3].strip() == "targeting (first match wins): internal-users -> Hierarchical"
    assert re.match(r"  Canary 1\s+1%   mirror 0%   at the earliest 2026-11-25T12:00:10Z \(\+10s\)", lines[4])
    assert re.match(r"  Canary 2\s+5% .* 2026-11-25T12:00:15Z \(\+15s\)", lines[7])
    assert lines[8].strip() == "holds here: the declared target"


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0s"), (59, "59s"), (61, "1m1s"), (3600, "1h"), (90061, "1d1h"), (-5, "0s")]
)
def test_durations_read_like_kubectls_ages(seconds: int, shown: str) -> None:
    assert views.duration(timedelta(seconds=seconds)) == shown
