"""What a run's numbers mean: which checks gate each phase, which trigger a rollback, and how an
unreadable value is treated under each ``inconclusive`` policy."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hal9_migration.analysis import Sample
from hal9_migration.analysis.verdicts import Bound, Measured, evaluate
from hal9_migration.models import Hal9MigrationSpec, Phase
from tests.support.manifests import load_sample


def spec(mode: str = "Proxy", **analysis: Any) -> Hal9MigrationSpec:
    raw = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    raw["analysis"] = {"prometheus": {"address": "http://p:9090"}, **analysis}
    raw.setdefault("phases", {}).setdefault("shadow", {})["mode"] = mode
    return Hal9MigrationSpec.model_validate(raw)


def measured(**values: float | None) -> list[Measured]:
    base: dict[str, float | None] = {
        "error-rate": 0.0,
        "p99-ms": 50.0,
        "flat-p99-ms": 50.0,
        "cpu-percent": 20.0,
        "memory-percent": 20.0,
        "output-parity": 1.0,
    }
    base.update({k.replace("_", "-"): v for k, v in values.items()})
    return [
        Measured(name, f"q_{name}", Sample(value) if value is not None else Sample(None, "no series"))
        for name, value in base.items()
    ]


def triggers_latency(phase: Phase) -> str:
    return "latency-ratio" if phase in (Phase.SHADOW, Phase.RAMP_UP, Phase.FULL) else "p99-ms"


@pytest.mark.parametrize(
    ("phase", "checks"),
    [
        (Phase.SHADOW, ["output-parity", "latency-ratio"]),
        (Phase.CANARY, ["error-rate", "p99-ms"]),
        (Phase.STATE_MIGRATION, ["error-rate", "p99-ms"]),
        (Phase.RAMP_UP, ["error-rate", "cpu-percent", "memory-percent", "latency-ratio"]),
        (Phase.FULL, ["health-score"]),
    ],
)
def test_each_phase_is_gated_by_its_own_checks(phase: Phase, checks: list[str]) -> None:
    result = evaluate(spec(), phase, measured())
    assert [c.name for c in result.checks] == checks
    assert result.verdict == "Pass"
    assert [t.name for t in result.triggers] == ["error-rate", triggers_latency(phase), "health-score"]
    assert result.trigger_state == "clear"


def test_a_canary_at_001_waits_and_one_at_008_goes_back() -> None:
    waiting = evaluate(spec(), Phase.CANARY, measured(error_rate=0.01))
    assert waiting.verdict == "Fail" and waiting.trigger_state == "clear"
    assert waiting.message == "error-rate 0.01 >= 0.001 (phases.canary.maxErrorRate)"
    going = evaluate(spec(), Phase.CANARY, measured(error_rate=0.08))
    assert going.trigger_state == "firing"
    firing = {t.name: t.reason for t in going.triggers if t.verdict == "Fail"}
    assert firing == {
        "error-rate": "0.08 > 0.05 (rollback.maxErrorRate)",
        "health-score": "0.7 < 0.8 (rollback.minHealthScore)",
    }


def test_latency_ratio_is_derived_and_its_query_shown() -> None:
    result = evaluate(spec(), Phase.RAMP_UP, measured(p99_ms=60.0, flat_p99_ms=50.0))
    ratio = next(c for c in result.checks if c.name == "latency-ratio")
    assert ratio.value == pytest.approx(1.2) and ratio.verdict == "Fail"
    assert ratio.query == "(q_p99-ms) / (q_flat-p99-ms)"
    assert ratio.reason == "1.2 > 1.1 (phases.rampUp.maxLatencyRatio)"
    assert result.trigger_state == "firing"  # over the phase's latency limit is a trigger too


def test_an_unreadable_value_pauses_by_default_and_fails_when_told() -> None:
    paused = evaluate(spec(), Phase.CANARY, measured(error_rate=None))
    assert paused.verdict == "Inconclusive" and paused.trigger_state == "unknown"
    assert "error-rate: no series" in paused.message and "Inconclusive holds the step" in paused.message
    assert paused.health.score is None
    failed = evaluate(spec(inconclusive="Fail"), Phase.CANARY, measured(error_rate=None))
    assert failed.verdict == "Fail" and failed.trigger_state == "firing"
    assert failed.message.startswith("Inconclusive counts as a failure (analysis.inconclusive: Fail)")


def test_user_checks_gate_every_phase_within_their_bounds() -> None:
    checks = [{"name": "queue", "query": "q", "min": 1, "max": 10}]
    values = [*measured(), Measured("queue", "q", Sample(12.0))]
    result = evaluate(spec(metrics=checks), Phase.SHADOW, values)
    queue = result.checks[-1]
    assert (queue.name, queue.verdict, queue.reason) == ("queue", "Fail", "12 > 10 (analysis.metrics[queue])")
    inside = evaluate(spec(metrics=checks), Phase.SHADOW, [*measured(), Measured("queue", "q", Sample(5.0))])
    assert inside.checks[-1].reason == "1 <= 5 <= 10 (analysis.metrics[queue])"


def test_shadow_behind_a_mesh_mirror_is_gated_on_errors_and_says_parity_is_not_measured() -> None:
    mirrored = evaluate(spec("Mirror"), Phase.SHADOW, measured(output_parity=None))
    assert [c.name for c in mirrored.checks] == ["error-rate", "latency-ratio"]
    assert "output-parity is not measured" in mirrored.notes[0]
    assert mirrored.health.parity is None and "output parity" in (mirrored.health.reason or "")
    assert evaluate(spec(), Phase.SHADOW, measured()).notes == []
    assert evaluate(spec("Mirror"), Phase.CANARY, measured()).notes == []


@pytest.mark.parametrize(
    ("parity", "verdict", "reason"),
    [
        (0.995, "Pass", "0.995 >= 0.99 (phases.shadow.minOutputParity)"),
        (0.99, "Pass", "0.99 >= 0.99 (phases.shadow.minOutputParity)"),
        (0.9, "Fail", "0.9 < 0.99 (phases.shadow.minOutputParity)"),
        (None, "Inconclusive", "no series"),
    ],
)
def test_shadow_with_the_proxy_is_gated_on_output_parity(
    parity: float | None, verdict: str, reason: str
) -> None:
    result = evaluate(spec(), Phase.SHADOW, measured(output_parity=parity))
    check = result.checks[0]
    assert (check.name, check.verdict, check.reason) == ("output-parity", verdict, reason)
    assert result.verdict == verdict
    assert result.health.parity == parity


def test_measured_parity_counts_in_the_health_score() -> None:
    # 1 - clamp((0.95 - 0.8) / 0.95 * 3, 0, 0.3) = 0.7 (errors, cpu and memory cost nothing here)
    assert evaluate(spec(), Phase.SHADOW, measured(output_parity=0.8)).health.score == 0.7


@pytest.mark.parametrize(
    ("bound", "value", "inside", "text"),
    [
        (Bound("e", None, 0.001, "s", strict=True), 0.001, False, "0.001 >= 0.001 (s)"),
        (Bound("e", None, 0.001, "s", strict=True), 0.0009, True, "0.0009 < 0.001 (s)"),
        (Bound("e", None, 0.05, "s"), 0.05, True, "0.05 <= 0.05 (s)"),
        (Bound("h", 0.8, None, "s"), 0.79, False, "0.79 < 0.8 (s)"),
        (Bound("h", 0.8, None, "s"), 0.8, True, "0.8 >= 0.8 (s)"),
    ],
)
def test_bounds_say_which_side_of_the_limit_a_value_is(
    bound: Bound, value: float, inside: bool, text: str
) -> None:
    assert bound.inside(value) is inside
    assert bound.describe(value) == text
