"""The decision core: the same spec and world always give the same status; bad input never crashes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hal9_migration import plan
from hal9_migration.models import Hal9MigrationStatus
from hal9_migration.traffic import ObservedRouting, RouteProblem
from tests.support.manifests import load_sample

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
SPEC = load_sample("flat-to-hierarchical")["spec"]
UNTOUCHED = plan.RouteView(ObservedRouting(weight=0, mirror=0, targeting=()))


def conditions_of(decision: plan.Decision) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in decision.status["conditions"]}


def run(
    raw: Any,
    missing: tuple[str, ...] = (),
    status: dict[str, Any] | None = None,
    generation: int = 1,
    now: datetime = T0,
    route: plan.RouteView | RouteProblem | None = UNTOUCHED,
) -> plan.Decision:
    return plan.decide(
        plan.parse_spec(raw), generation, plan.load_status(status), plan.Observed(missing), now, route=route
    )


def test_missing_references_stall() -> None:
    decision = run(SPEC, missing=("Service ns/hal9-flat",))
    assert conditions_of(decision) == {
        "Ready": ("False", "ReferenceNotFound"),
        "Reconciling": ("False", "ReferenceNotFound"),
        "Stalled": ("True", "ReferenceNotFound"),
        "Degraded": ("False", "NoAnalysis"),
        "Paused": ("False", "NotPaused"),
    }
    assert decision.status["observedGeneration"] == 1
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "ReferenceNotFound")]
    assert "Service ns/hal9-flat" in decision.events[0].message


def test_resolved_references_start_the_migration_in_shadow() -> None:
    decision = run(SPEC)
    assert conditions_of(decision)["Reconciling"] == ("True", "WaitingForStep")
    assert conditions_of(decision)["Stalled"] == ("False", "WaitingForStep")
    assert decision.route is not None and decision.route.record.phase == "Shadow"
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "Started")]


@pytest.mark.parametrize(
    ("problem", "reason"),
    [
        (RouteProblem("RouteNotFound", "VirtualService ns/hal9 not found"), "RouteNotFound"),
        (
            RouteProblem("RouteMisconfigured", "route primary has no hal9-flat destination"),
            "RouteMisconfigured",
        ),
        (plan.RouteView(ObservedRouting(0, 0, ()), owner="ns/other"), "RouteInUse"),
        (plan.RouteView(ObservedRouting(0, 0, ()), unsupported="SMI cannot mirror"), "UnsupportedByRouter"),
    ],
)
def test_route_problems_stall_with_their_reason_and_touch_nothing(
    problem: plan.RouteView | RouteProblem, reason: str
) -> None:
    decision = run(SPEC, route=problem)
    assert conditions_of(decision)["Stalled"] == ("True", reason)
    assert decision.route is None
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", reason)]


def test_paused_spec_says_so() -> None:
    decision = run({**SPEC, "paused": True})
    assert conditions_of(decision)["Paused"] == ("True", "PausedBySpec")
    assert ("Normal", "Paused") in [(e.type, e.reason) for e in decision.events]


def test_a_new_generation_is_a_change_even_if_conditions_agree() -> None:
    first = run(SPEC)
    second = run(SPEC, status=first.status, generation=2)
    assert second.changed and second.status["observedGeneration"] == 2


def test_invalid_spec_stalls_with_the_fields_named() -> None:
    decision = run({**SPEC, "trafficSplit": 60, "trafficRouter": {}})
    stalled = next(c for c in decision.status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert "spec.trafficRouter" in stalled["message"]
    assert "set exactly one traffic router" in stalled["message"]


def test_fields_written_by_later_versions_survive_a_pass() -> None:
    first = run(SPEC, status={"someFutureField": 1, "history": [{"time": "t", "reason": "Old"}]})
    assert first.status["history"][0]["reason"] == "Old"


@pytest.mark.parametrize("bad", [{"conditions": "garbage"}, {"observedGeneration": "x"}, {"history": [1]}])
def test_an_unreadable_status_field_is_dropped_and_the_rest_kept(bad: dict[str, Any]) -> None:
    position = {"phase": "Canary", "step": 3, "weight": 10, "since": "2026-11-25T11:00:00.000Z"}
    route = plan.RouteView(ObservedRouting(weight=10, mirror=0, targeting=()))
    decision = run(SPEC, status={"position": position, **bad}, route=route)
    assert conditions_of(decision)["Ready"] == ("True", "TargetReached")
    assert (decision.status["phase"], decision.status["weight"]) == ("Canary", 10)


def test_forbidden_references_stall_and_point_at_rbac() -> None:
    decision = plan.decide(
        plan.parse_spec(SPEC),
        1,
        plan.load_status(None),
        plan.Observed(forbidden=("Service ns/hal9-flat",)),
        T0,
        route=UNTOUCHED,
    )
    stalled = next(c for c in decision.status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ReferenceForbidden")
    assert "Service ns/hal9-flat" in stalled["message"] and "RBAC" in stalled["message"]


def test_paused_is_reported_even_while_stalled() -> None:
    decision = run({**SPEC, "paused": True}, missing=("Service ns/hal9-flat",))
    assert conditions_of(decision)["Paused"] == ("True", "PausedBySpec")
    assert conditions_of(decision)["Stalled"] == ("True", "ReferenceNotFound")


def test_an_invalid_spec_leaves_paused_unknown() -> None:
    decision = run({**SPEC, "paused": True, "trafficSplit": 99})
    assert conditions_of(decision)["Paused"] == ("Unknown", "InvalidSpec")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@given(spec=json_values, status=json_values)
@example(spec={**SPEC, "progressDeadline": "1000000000d"}, status={})
@example(spec={**SPEC, "phases": {"canary": {"stepDuration": "999999d999999d999999d"}}}, status={})
@example(spec=[], status=[])
def test_any_object_gives_a_decision_never_an_exception(spec: Any, status: Any) -> None:
    decision = plan.decide(
        plan.parse_spec(spec),
        1,
        plan.load_status(status),
        plan.Observed(),
        T0,
        route=UNTOUCHED,
    )
    assert decision.status["observedGeneration"] == 1
    Hal9MigrationStatus.model_validate(decision.status)


@given(overrides=st.dictionaries(st.sampled_from(sorted(SPEC)), json_values, max_size=3))
def test_mangled_sample_specs_never_crash(overrides: dict[str, Any]) -> None:
    decision = run({**SPEC, **overrides})
    assert set(conditions_of(decision)) == {"Ready", "Reconciling", "Stalled", "Degraded", "Paused"}
