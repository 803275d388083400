"""The resource model: defaults are HAL9's plan, and every invalid manifest is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hal9_migration.inputs import describe
from hal9_migration.models import Hal9MigrationSpec, Phase, StringMatch, parse_duration, traffic_split_range
from tests.support.manifests import SAMPLES, InvalidCase, invalid_cases, load_sample, valid_cases

MINIMAL = {
    "flat": {"service": "hal9-flat", "deployment": "hal9-flat"},
    "hierarchical": {"service": "hal9-hierarchical", "deployment": "hal9-hierarchical"},
    "targetPhase": "Shadow",
    "trafficRouter": {"istio": {"virtualService": "hal9"}},
}


def test_defaults_are_hal9s_plan() -> None:
    spec = Hal9MigrationSpec.model_validate(MINIMAL)
    assert spec.phases.shadow.mirror_percent == 100
    assert spec.phases.shadow.min_output_parity == 0.99
    assert spec.phases.shadow.max_latency_ratio == 1.1
    assert spec.phases.canary.steps == [1, 5, 10, 25]
    assert (spec.phases.canary.max_error_rate, spec.phases.canary.max_p99_ms) == (0.001, 100)
    assert spec.phases.ramp_up.steps == [50, 75, 90]
    assert (spec.phases.ramp_up.max_cpu_percent, spec.phases.ramp_up.max_memory_percent) == (60, 70)
    assert spec.phases.ramp_up.stable_for == "1h"
    assert spec.phases.full.min_health_score == 0.8
    assert (spec.rollback.max_error_rate, spec.rollback.min_health_score) == (0.05, 0.8)
    assert spec.analysis.failure_limit == 3
    assert spec.analysis.inconclusive == "Pause"
    assert spec.progress_deadline == "30m"


def test_sample_round_trips_in_camel_case() -> None:
    raw = load_sample("flat-to-hierarchical")["spec"]
    spec = Hal9MigrationSpec.model_validate(raw)
    dumped = spec.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert dumped == raw


@pytest.mark.parametrize("case", invalid_cases(), ids=lambda c: c.name)
def test_invalid_manifest_is_refused_by_the_model_for_the_same_reason(case: InvalidCase) -> None:
    with pytest.raises(ValidationError) as refused:
        Hal9MigrationSpec.model_validate(case.manifest["spec"])
    assert case.model in describe(refused.value)


@pytest.mark.parametrize(("name", "manifest"), valid_cases(), ids=[name for name, _ in valid_cases()])
def test_valid_manifest_is_accepted_by_the_model(name: str, manifest: dict[str, Any]) -> None:
    Hal9MigrationSpec.model_validate(manifest["spec"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0s", "-5m", "5", "1 day", "2w", "1.5h", "m5", "1000000000d", "0h0m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_phase_numbers_follow_the_plan() -> None:
    assert [p.number for p in Phase] == [1, 2, 3, 4, 5]
    assert [p.value for p in Phase] == ["Shadow", "Canary", "StateMigration", "RampUp", "Full"]


def test_traffic_split_range_follows_overridden_steps() -> None:
    spec = Hal9MigrationSpec.model_validate(
        {**MINIMAL, "phases": {"canary": {"steps": [2, 20]}, "rampUp": {"steps": [40, 80]}}}
    )
    assert traffic_split_range(Phase.CANARY, spec.phases) == (2, 20)
    assert traffic_split_range(Phase.STATE_MIGRATION, spec.phases) == (0, 20)
    assert traffic_split_range(Phase.RAMP_UP, spec.phases) == (40, 80)
    assert traffic_split_range(Phase.SHADOW, spec.phases) == (0, 0)
    assert traffic_split_range(Phase.FULL, spec.phases) == (100, 100)


@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        ("(?=x)", "invalid perl operator: (?="),  # lookahead: Python's re has it, RE2 does not
        ("(?<!x)y", "invalid perl operator: (?<!"),  # lookbehind
        ("a(", "missing ): a("),
        (r"(a)\1", r"invalid escape sequence: \1"),  # backreference
        ("a{1001}", "invalid repetition size: {1001}"),  # RE2 caps counted repetition at 1000
        ("x*+", "bad repetition operator: *+"),  # possessive quantifier
    ],
)
def test_targeting_regex_must_be_re2(regex: str, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        StringMatch.model_validate({"regex": regex})
    assert describe(refused.value) == (
        f"spec: regex must be a valid RE2 regular expression (the syntax Envoy and Istio use): {reason}"
    )


@pytest.mark.parametrize("regex", ["^in.*$", ".*hal9-cli.*", "(?i)internal|beta", r"v\d+\.\d+", "[^/]+", ""])
def test_valid_re2_regexes_are_accepted(regex: str) -> None:
    assert StringMatch.model_validate({"regex": regex}).regex == regex


def test_an_invalid_regex_makes_the_whole_spec_invalid() -> None:
    header = {"x-hal9-user-group": {"regex": "int(ernal"}}
    rule = {"name": "internal-users", "match": {"headers": header}, "route": "Hierarchical"}
    with pytest.raises(ValidationError) as refused:
        Hal9MigrationSpec.model_validate({**MINIMAL, "targeting": [rule]})
    assert describe(refused.value).startswith(
        "spec.targeting.0.match.headers.x-hal9-user-group: regex must be a valid RE2 regular expression"
    )


def test_every_sample_migration_is_valid() -> None:
    found = [
        (path.name, doc)
        for path in sorted(SAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "Hal9Migration"
    ]
    assert len(found) >= 6
    for _, doc in found:
        Hal9MigrationSpec.model_validate(doc["spec"])
