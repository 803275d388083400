"""The fast JSON reading (orjson) gives exactly what the reference reading gives, or steps aside.

Every test here compares the worker as it runs (fast path on) with the worker reading everything
through the reference decoder (fast path off): same neuron bit for bit, or the same Failure.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal9_migration.statemigration import flat, jsontext, pipeline, units
from hal9_migration.statemigration.fingerprint import fingerprint_neuron, fingerprint_unit
from tests.unit.statemigration.conftest import MIGRATED_AT, exact, flat_neurons, make_neuron, to_raw, unit_row

BIG = 18446744073709551616  # 2**64: orjson alone would read it as a float


def _reference(raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """decode as it would be if orjson stepped aside every time."""
    with monkeypatch.context() as patch:
        for name in ("fast_floats", "fast_connections", "fast_object", "fast_unit_json"):
            patch.setattr(jsontext, name, lambda *_: None)
        return flat.decode(raw)


# Texts where orjson and the reference differ, or that sit on the edge of a check.
TRICKY: dict[str, list[str]] = {
    "weights": [
        f"[{BIG}]",
        "[123456789012345678901234567890]",
        "[-9223372036854775809, 0.5]",
        "[9223372036854775807, 1]",
        "[1e19, 0.00015352388640672307]",
        "[0.1000000000000000055511151231257827021181583404541015625]",
        "[1, 2, 3.5, -0.0, 5e-324]",
        "[NaN]",
        "[1e999]",
        "[true]",
        "[1.0,]",
        "[" * 1010 + "]" * 1010,
    ],
    "connections": [
        '[{"target": "t", "weight": 18446744073709551616, "conn_type": "x"}]',
        '[{"target": "12345678901234567890", "weight": 1e20, "conn_type": "x"}]',
        '[{"target": "\\u0031234567890123456789", "weight": 1e20, "conn_type": "x"}]',
        '[{"target": "a:b", "weight": 0.5, "conn_type": "forward"}]',
        '[{"target": "t", "target": "u", "weight": 1.0, "conn_type": "x"}]',
        '[{"target": "t", "weight": 1.0, "conn_type": "x", "conn_type": "y"}]',
        '[{"target": "t", "weight": 3, "conn_type": "lateral"}]',
        '[{"target": "t", "weight": -3, "conn_type": ""}, {"target": "u", "weight": 0.5, "conn_type": "x"}]',
        '[{"target": "t", "weight": 9007199254740993, "conn_type": "x"}]',
        '[{"target": "t", "weight": true, "conn_type": "x"}]',
        '[{"target": "\\ud800", "weight": 1.0, "conn_type": "x"}]',
    ],
    "memory": [
        f'{{"k": {BIG}}}',
        f'{{"k": -{BIG}, "s": "{BIG}"}}',
        '{"k": 9223372036854775808}',
        '{"a": 1, "a": 2}',
        '{"a": 1, "a": 2, "b": "\\u003a"}',
        '{"a": "x:y", "b": {"c": ":"}}',
        '{"a": 1e400}',
        '{"a": "\\ud800"}',
        '{"a": "\\u00e9\\ud83e\\udde0"}',
        '{"a": 0.12345678901234567890123}',
        '{"a":' * 300 + "1" + "}" * 300,
    ],
    "context": [f'{{"focus": {BIG}}}', '{"focus": [1, "二", 3.5], "focus": null}', '{"focus": -0.0}'],
}


@pytest.mark.parametrize(("column", "text"), [(c, t) for c, texts in TRICKY.items() for t in texts])
def test_fast_and_reference_readings_agree_on_tricky_texts(
    column: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = to_raw(make_neuron(), **{column: text})
    assert exact(flat.decode(raw)) == exact(_reference(raw, monkeypatch))


@settings(max_examples=150, deadline=None)
@given(neuron=flat_neurons, compact=st.booleans())
def test_fast_and_reference_readings_agree_on_any_valid_row(neuron: Any, compact: bool) -> None:
    raw = to_raw(neuron)
    if compact:  # the other spelling writers use
        raw = {
            k: v.replace(", ", ",").replace(": ", ":") if k in TRICKY or k == "biases" else v
            for k, v in raw.items()
        }
    with pytest.MonkeyPatch.context() as patch:
        expected = _reference(raw, patch)
    assert exact(flat.decode(raw)) == exact(expected)


def test_integers_beyond_64_bits_keep_every_digit_through_the_migration() -> None:
    neuron = make_neuron(memory={"k": BIG, "n": -(BIG + 1)}, context={"focus": BIG * 10})
    raw = to_raw(neuron)
    decoded = flat.decode(raw)
    assert decoded["memory"] == {"k": BIG, "n": -(BIG + 1)}  # type: ignore[typeddict-item]
    result = pipeline.migrate_row(raw, MIGRATED_AT)
    assert isinstance(result, tuple)
    row, fingerprint = result
    assert str(BIG) in row[2] and str(BIG * 10) in row[2]
    back = units.decode_unit(unit_row(row))
    assert back["cognitive_state"]["working_memory"] == {"k": BIG, "n": -(BIG + 1)}
    assert back["cognitive_state"]["attention_focus"] == BIG * 10
    assert fingerprint_unit(back) == fingerprint == fingerprint_neuron(neuron)


def test_a_duplicate_key_behind_an_escaped_colon_is_still_refused() -> None:
    failure = flat.decode(to_raw(make_neuron(), memory='{"a": 1, "a": 2, "b": "\\u003a"}'))
    assert flat.is_failure(failure)
    assert failure["validator"] == "decode" and "duplicate key" in failure["reason"]


def test_weights_survive_bit_for_bit_through_the_fast_path() -> None:
    weights = [-0.0, 0.0, 5e-324, -5e-324, 2.225073858507201e-308, 1.7976931348623157e308, 0.1, 1 / 3]
    result = pipeline.migrate_row(to_raw(make_neuron(weights=weights)), MIGRATED_AT)
    assert isinstance(result, tuple)
    back = units.decode_unit(unit_row(result[0]))
    packed = [struct.pack("<d", w) for w in back["learning_state"]["weights"]]
    assert packed == [struct.pack("<d", w) for w in weights]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_printing_refuses_what_json_cannot_carry(value: float) -> None:
    unit = units.convert(make_neuron(), MIGRATED_AT)
    unit["learning_state"]["weights"][0] = value
    with pytest.raises(ValueError, match="not JSON"):
        units.encode_unit(unit)
    unit = units.convert(make_neuron(), MIGRATED_AT)
    unit["cognitive_state"]["working_memory"] = {"x": [1, {"y": value}]}
    with pytest.raises(ValueError, match="not JSON"):
        units.encode_unit(unit)


def test_decode_unit_fast_and_reference_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    neuron = make_neuron(
        memory={"k": BIG, "s": "12345678901234567890"},
        weights=[1e20, 0.00015352388640672307, -0.0],
        connections=[{"target": "12345678901234567890123", "weight": 1e30, "conn_type": "x"}],
    )
    result = pipeline.migrate_row(to_raw(neuron), MIGRATED_AT)
    assert isinstance(result, tuple)
    row = unit_row(result[0])
    fast = units.decode_unit(row)
    monkeypatch.setattr(jsontext, "fast_unit_json", lambda *_: None)
    assert exact(fast) == exact(units.decode_unit(row))
    assert fast["cognitive_state"]["working_memory"]["k"] == BIG


def test_decode_unit_reads_a_long_integer_orjson_would_round() -> None:
    row = unit_row(units.encode_unit(units.convert(make_neuron(), MIGRATED_AT)))
    row["connections"] = f'[{{"target_id":"t","connection_type":"Forward","weight":{BIG * 1000 + 1}}}]'
    with pytest.raises(ValueError, match="connection 0"):  # no exact float: not a unit's weight
        units.decode_unit(row)
