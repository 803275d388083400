"""HAL9's parity rule on single pairs: the Shadow gate is the sum of these verdicts, so a pair scored
wrong moves parity for every request like it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration.shadow.compare import (
    IDENTICAL,
    CompareRules,
    DivergenceKind,
    Verdict,
    compare_answers,
    failure_verdict,
    parse_path,
    same_json,
)

RULES = CompareRules()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def verdict(
    primary: Any, shadow: Any, rules: CompareRules = RULES, statuses: tuple[int, int] = (200, 200)
) -> Verdict:
    left = primary if isinstance(primary, bytes) else body(primary)
    right = shadow if isinstance(shadow, bytes) else body(shadow)
    return compare_answers(rules, statuses[0], left, statuses[1], right)


def test_identical_answers_score_zero() -> None:
    answer = {"output": "hal9:abc", "confidence": 0.9}
    assert verdict(answer, dict(answer)) == IDENTICAL == Verdict(None, 0.0)


def test_key_order_and_spacing_do_not_matter() -> None:
    assert verdict(b'{"a": 1, "b": [1, 2]}', b'{"b":[1,2],"a":1}') == IDENTICAL


def test_a_different_output_scores_one() -> None:
    assert verdict({"output": "a", "confidence": 0.9}, {"output": "b", "confidence": 0.9}) == Verdict(
        DivergenceKind.OUTPUT, 1.0
    )


def test_a_missing_or_extra_field_is_a_different_output() -> None:
    assert verdict({"output": "a"}, {"output": "a", "extra": 1}).kind is DivergenceKind.OUTPUT
    assert verdict({"output": "a", "extra": 1}, {"output": "a"}).kind is DivergenceKind.OUTPUT


def test_ignored_fields_are_left_out() -> None:
    rules = CompareRules(ignored_fields=(("timestamp",), ("system",)))
    primary = {"output": "a", "timestamp": 1, "system": "flat"}
    shadow = {"output": "a", "timestamp": 2, "system": "hierarchical"}
    assert verdict(primary, shadow, rules) == IDENTICAL
    assert verdict(primary, shadow).kind is DivergenceKind.OUTPUT  # without the rule they differ


def test_nested_ignored_paths_and_paths_through_lists() -> None:
    rules = CompareRules(ignored_fields=(parse_path("meta.requestId"), parse_path("items.id")))
    primary = {
        "meta": {"requestId": "r1", "region": "eu"},
        "items": [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}],
    }
    shadow: dict[str, Any] = {
        "meta": {"requestId": "r2", "region": "eu"},
        "items": [{"id": 7, "v": "x"}, {"id": 8, "v": "y"}],
    }
    assert verdict(primary, shadow, rules) == IDENTICAL
    shadow["meta"]["region"] = "us"  # a sibling of an ignored field still counts
    assert verdict(primary, shadow, rules).kind is DivergenceKind.OUTPUT


def test_a_missing_ignored_path_is_fine() -> None:
    rules = CompareRules(ignored_fields=(parse_path("meta.requestId"), parse_path("nothing.here")))
    assert verdict(
        {"output": "a", "meta": "not an object"}, {"output": "a", "meta": "not an object"}, rules
    ) == (IDENTICAL)
    assert verdict([1, 2], [1, 2], rules) == IDENTICAL  # not even an object


@pytest.mark.parametrize(
    ("shadow_confidence", "expected"),
    [
        (0.9, IDENTICAL),
        (0.85, IDENTICAL),  # |0.05| within 0.1
        (0.95, IDENTICAL),
        (0.75, Verdict(DivergenceKind.CONFIDENCE, 0.5)),  # |0.15| over
        (0.2, Verdict(DivergenceKind.CONFIDENCE, 0.5)),
    ],
)
def test_confidence_within_and_over_the_tolerance(shadow_confidence: float, expected: Verdict) -> None:
    primary = {"output": "a", "confidence": 0.9}
    assert verdict(primary, {"output": "a", "confidence": shadow_confidence}) == expected
    assert verdict({"output": "a", "confidence": shadow_confidence}, primary) == expected  # symmetric


def test_a_difference_equal_to_the_tolerance_is_within() -> None:
    # Binary fractions, so the difference is exactly the tolerance: "more than" is strict.
    rules = CompareRules(confidence_tolerance=0.25)
    assert verdict({"confidence": 0.5}, {"confidence": 0.75}, rules) == IDENTICAL
    assert verdict({"confidence": 0.5}, {"confidence": 0.765625}, rules).kind is DivergenceKind.CONFIDENCE


def test_the_tolerance_and_the_field_are_configurable() -> None:
    rules = CompareRules(confidence_field=parse_path("scores.confidence"), confidence_tolerance=0.01)
    primary = {"output": "a", "scores": {"confidence": 0.90}}
    assert verdict(primary, {"output": "a", "scores": {"confidence": 0.905}}, rules) == IDENTICAL
    assert verdict(primary, {"output": "a", "scores": {"confidence": 0.92}}, rules).kind is (
        DivergenceKind.CONFIDENCE
    )
    # The default field name is an ordinary field under these rules: a difference is an output one.
    assert verdict({"confidence": 0.9}, {"confidence": 0.91}, rules).kind is DivergenceKind.OUTPUT


def test_a_different_output_wins_over_a_different_confidence() -> None:
    assert verdict({"output": "a", "confidence": 0.9}, {"output": "b", "confidence": 0.1}).kind is (
        DivergenceKind.OUTPUT
    )


def test_a_confidence_on_one_side_only_is_a_different_output() -> None:
    assert verdict({"output": "a", "confidence": 0.9}, {"output": "a"}).kind is DivergenceKind.OUTPUT
    assert verdict({"output": "a", "confidence": 0.9}, {"output": "a", "confidence": "high"}).kind is (
        DivergenceKind.OUTPUT
    )


def test_integers_are_numbers_but_booleans_are_not() -> None:
    assert verdict({"output": 1, "confidence": 1}, {"output": 1.0, "confidence": 0.95}) == IDENTICAL
    assert verdict({"output": True}, {"output": 1}).kind is DivergenceKind.OUTPUT
    assert verdict({"output": 0}, {"output": False}).kind is DivergenceKind.OUTPUT
    assert verdict({"output": "a", "confidence": True}, {"output": "a", "confidence": 1}).kind is (
        DivergenceKind.OUTPUT
    )


@pytest.mark.parametrize(("statuses"), [(200, 500), (500, 200), (200, 404), (201, 200)])
def test_different_statuses_score_one_whatever_the_bodies(statuses: tuple[int, int]) -> None:
    answer = {"output": "a", "confidence": 0.9}
    assert verdict(answer, answer, statuses=statuses) == Verdict(DivergenceKind.STATUS, 1.0)
    assert verdict(b"same text", b"same text", statuses=statuses).kind is DivergenceKind.STATUS


def test_same_error_status_and_body_is_parity() -> None:
    assert verdict({"error": "bad input"}, {"error": "bad input"}, statuses=(400, 400)) == IDENTICAL


def test_non_json_bodies_compare_by_bytes() -> None:
    assert verdict(b"plain answer", b"plain answer") == IDENTICAL
    assert verdict(b"plain answer", b"plain answer ") == Verdict(DivergenceKind.OUTPUT, 1.0)
    assert verdict(b"", b"") == IDENTICAL
    assert verdict(b"\xff\xfe", b"\xff\xfe") == IDENTICAL  # not even UTF-8
    # JSON on one side only: they differ, and the ignore rules cannot make them equal.
    rules = CompareRules(ignored_fields=(("a",),))
    assert verdict(b'{"a": 1}', b"{}x", rules).kind is DivergenceKind.OUTPUT


def test_failures_score_one() -> None:
    assert failure_verdict(timed_out=True) == Verdict(DivergenceKind.TIMEOUT, 1.0)
    assert failure_verdict(timed_out=False) == Verdict(DivergenceKind.ERROR, 1.0)


@pytest.mark.parametrize("text", ["", ".", "a.", ".a", "a..b"])
def test_bad_paths_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="dotted field path"):
        parse_path(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_every_json_value_is_at_parity_with_itself(value: Any) -> None:
    encoded = json.dumps(value).encode()
    assert compare_answers(RULES, 200, encoded, 200, encoded) == IDENTICAL


@given(json_values, json_values)
def test_same_json_agrees_with_canonical_serialization(left: Any, right: Any) -> None:
    # Two JSON values are the same when their canonical forms are, once integers and floats of the same
    # value are written alike (JSON has one number type).
    def canonical(value: Any) -> str:
        def normalize(v: Any) -> Any:
            if isinstance(v, bool) or v is None or isinstance(v, str):
                return v
            if isinstance(v, int | float):
                return float(v)
            if isinstance(v, list):
                return [normalize(x) for x in v]
            return {k: normalize(x) for k, x in v.items()}

        return json.dumps(normalize(value), sort_keys=True)

    assert same_json(left, right) == (canonical(left) == canonical(right))
