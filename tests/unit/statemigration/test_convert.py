"""Conversion, layer assignment and the three validators of DESIGN §5, case by case."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from hal9_migration.statemigration import pipeline, units
from hal9_migration.statemigration.fingerprint import combine, fingerprint_neuron, fingerprint_unit
from hal9_migration.statemigration.rows import UNIT_COLUMNS, UNIT_JSON_COLUMNS
from tests.unit.statemigration.conftest import (
    MIGRATED_AT,
    TYPE_LAYERS,
    clone_unit,
    exact,
    float_bits,
    make_neuron,
    to_raw,
    unit_row,
)

# ---------------------------------------------------------------------------------------- conversion


def test_conversion_field_by_field() -> None:
    neuron = make_neuron()
    unit = units.convert(neuron, MIGRATED_AT)

    assert unit["unit_id"] == neuron["neuron_id"]
    assert unit["layer"] == "L2"  # unknown type, 10 <= 42 ms < 200

    cs = unit["cognitive_state"]
    assert cs["activation_level"] is neuron["activation"]
    assert cs["attention_focus"] == {"topic": "東京"}
    assert cs["working_memory"] == neuron["memory"]
    assert cs["processing_mode"] == "async"

    ls = unit["learning_state"]
    assert float_bits(ls["weights"]) == float_bits(neuron["weights"])
    assert all(a is b for a, b in zip(ls["weights"], neuron["weights"], strict=True))
    assert float_bits(ls["biases"]) == float_bits(neuron["biases"])
    assert ls["learning_rate"] is neuron["learning_rate"]
    assert ls["momentum"] == 0.5
    assert ls["gradient_history"] == []

    assert [c["target_id"] for c in unit["connections"]] == [c["target"] for c in neuron["connections"]]
    assert [c["connection_type"] for c in unit["connections"]] == [
        "Forward",
        "Backward",
        "Lateral",
        "Forward",  # "inhibitory" is unknown
    ]
    assert float_bits([c["weight"] for c in unit["connections"]]) == float_bits(
        [c["weight"] for c in neuron["connections"]]
    )

    assert unit["metadata"] == {
        "original_id": neuron["neuron_id"],
        "original_type": "sensor",
        "created_at": "2026-01-01T00:00:00Z",
        "migrated_at": MIGRATED_AT,
    }
    assert set(unit) == set(UNIT_COLUMNS)


def test_conversion_does_not_alias_the_weight_lists() -> None:
    neuron = make_neuron()
    unit = units.convert(neuron, MIGRATED_AT)
    unit["learning_state"]["weights"].append(1.0)
    unit["learning_state"]["biases"].clear()
    assert len(neuron["weights"]) == 6
    assert len(neuron["biases"]) == 2


@pytest.mark.parametrize(
    ("momentum", "expected"),
    [(None, 0.9), (0.0, 0.0), (-0.0, -0.0), (0.5, 0.5), (0.9, 0.9)],
)
def test_momentum_defaults_to_0_9_only_when_absent(momentum: float | None, expected: float) -> None:
    unit = units.convert(make_neuron(momentum=momentum), MIGRATED_AT)
    assert struct.pack("<d", unit["learning_state"]["momentum"]) == struct.pack("<d", expected)


@pytest.mark.parametrize(
    ("context", "focus"),
    [
        ({}, None),
        ({"task": "x"}, None),
        ({"focus": None}, None),
        ({"focus": "plan"}, "plan"),
        ({"focus": [1, {"a": "🧠"}]}, [1, {"a": "🧠"}]),
        ({"Focus": "wrong case"}, None),
    ],
)
def test_attention_focus_is_context_focus(context: dict[str, Any], focus: Any) -> None:
    unit = units.convert(make_neuron(context=context), MIGRATED_AT)
    assert unit["cognitive_state"]["attention_focus"] == focus


@pytest.mark.parametrize(("is_async", "mode"), [(True, "async"), (False, "sync")])
def test_processing_mode(is_async: bool, mode: str) -> None:
    unit = units.convert(make_neuron(is_async=is_async), MIGRATED_AT)
    assert unit["cognitive_state"]["processing_mode"] == mode


@pytest.mark.parametrize(
    ("conn_type", "expected"),
    [
        ("forward", "Forward"),
        ("Forward", "Forward"),
        ("FORWARD", "Forward"),
        ("backward", "Backward"),
        ("BackWard", "Backward"),
        ("lateral", "Lateral"),
        ("LATERAL", "Lateral"),
        ("inhibitory", "Forward"),
        ("", "Forward"),
        (" backward", "Forward"),
        ("lateral ", "Forward"),
        ("backwards", "Forward"),
    ],
)
def test_connection_type_mapping(conn_type: str, expected: str) -> None:
    conns = [{"target": "t", "weight": 1.0, "conn_type": conn_type}]
    unit = units.convert(make_neuron(connections=conns), MIGRATED_AT)
    assert unit["connections"] == [{"target_id": "t", "connection_type": expected, "weight": 1.0}]


def test_no_connections_and_no_weights() -> None:
    neuron = make_neuron(connections=[], weights=[], biases=[])
    unit = units.convert(neuron, MIGRATED_AT)
    assert unit["connections"] == []
    assert unit["learning_state"]["weights"] == []
    assert units.validate(neuron, unit) is None


# ------------------------------------------------------------------------------------ layer assignment


@pytest.mark.parametrize(("neuron_type", "layer"), sorted(TYPE_LAYERS.items()))
@pytest.mark.parametrize("spell", [str.lower, str.upper, str.capitalize, str.swapcase])
@pytest.mark.parametrize(("rt", "count"), [(0.5, 0), (50.0, 5), (500.0, 5), (500.0, 50)])
def test_known_types_decide_whatever_the_behaviour(
    neuron_type: str, layer: str, spell: Any, rt: float, count: int
) -> None:
    assert units.assign_layer(spell(neuron_type), rt, count) == layer


@pytest.mark.parametrize(
    ("rt", "count", "layer"),
    [
        (0.0, 0, "L1"),
        (-5.0, 50, "L1"),
        (9.999, 50, "L1"),
        (9.999999999999998, 0, "L1"),
        (10.0, 0, "L2"),  # 10 ms is not < 10
        (10.0, 50, "L2"),
        (199.999, 50, "L2"),
        (199.99999999999997, 0, "L2"),
        (200.0, 10, "L3"),  # 200 ms is not < 200; 10 connections is not > 10
        (200.0, 11, "L4"),
        (200.0, 0, "L3"),
        (1e9, 10, "L3"),
        (1e9, 11, "L4"),
        (1e9, 10**6, "L4"),
    ],
)
def test_behaviour_rule_for_unknown_types(rt: float, count: int, layer: str) -> None:
    assert units.assign_layer("sensor", rt, count) == layer


@pytest.mark.parametrize(
    "neuron_type", ["reflexive", " reflex", "planner ", "re-flex", "", "L1", "ärchitect"]
)
def test_near_miss_type_names_fall_to_behaviour(neuron_type: str) -> None:
    assert units.assign_layer(neuron_type, 500.0, 11) == "L4"
    assert units.assign_layer(neuron_type, 1.0, 11) == "L1"


def test_type_takes_precedence_over_behaviour() -> None:
    # Each of these would get a different layer from its behaviour alone.
    assert units.assign_layer("reflex", 10_000.0, 100) == "L1"
    assert units.assign_layer("Visionary", 1.0, 0) == "L5"
    assert units.assign_layer("MANAGER", 1.0, 100) == "L3"
    assert units.assign_layer("strategist", 5.0, 0) == "L4"
    assert units.assign_layer("Implementer", 500.0, 20) == "L2"


def test_convert_uses_the_layer_rule() -> None:
    assert (
        units.convert(make_neuron(neuron_type="Planner", avg_response_time=1.0), MIGRATED_AT)["layer"] == "L4"
    )
    assert (
        units.convert(
            make_neuron(neuron_type="x", avg_response_time=200.0, connection_count=11), MIGRATED_AT
        )["layer"]
        == "L4"
    )


# ------------------------------------------------------------------------------------------ validators


def _valid() -> tuple[Any, Any]:
    neuron = make_neuron()
    unit = units.convert(neuron, MIGRATED_AT)
    assert units.validate(neuron, unit) is None
    return neuron, clone_unit(unit)


def _other_float(value: float) -> float:
    """A float whose bits differ from ``value``'s."""
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    return float(struct.unpack("<d", struct.pack("<Q", bits ^ 1))[0])


def _nan(payload: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000 | payload))[0])


def _break(path: str, value: Any) -> tuple[Any, Any]:
    neuron, unit = _valid()
    *parents, last = path.split(".")
    target = unit
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return neuron, unit


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("unit_id", "not-a-uuid", "unit_id"),
        ("unit_id", "3F2B8C4E-9A1D-4E5F-8B7A-6C5D4E3F2A1C", "differs from neuron_id"),
        ("unit_id", "3f2b8c4e9a1d4e5f8b7a6c5d4e3f2a1b", "unit_id"),
        ("unit_id", None, "unit_id"),
        ("layer", "L6", "layer"),
        ("layer", "l2", "layer"),
        ("layer", "L4", "assignment rule"),
        ("cognitive_state", _DELETE, "cognitive_state"),
        ("cognitive_state.activation_level", "0.75", "activation_level"),
        ("cognitive_state.attention_focus", _DELETE, "attention_focus"),
        ("cognitive_state.working_memory", [], "working_memory"),
        ("cognitive_state.processing_mode", "parallel", "processing_mode"),
        ("learning_state", _DELETE, "learning_state"),
        ("learning_state.weights", None, "weights"),
        ("learning_state.weights", [0.1, "0.2"], "weights"),
        ("learning_state.biases", [1], "biases"),
        ("learning_state.learning_rate", None, "learning_rate"),
        ("learning_state.momentum", _DELETE, "momentum"),
        ("learning_state.gradient_history", None, "gradient_history"),
        ("connections", {}, "connections"),
        ("connections.1.connection_type", "Sideways", "connection 1"),
        ("connections.2.weight", "1e-310", "connection 2"),
        ("connections.0.target_id", _DELETE, "connection 0"),
        ("metadata", _DELETE, "metadata"),
        ("metadata.migrated_at", None, "migrated_at"),
        ("metadata.original_id", 7, "original_id"),
    ],
)
def test_schema_validator(path: str, value: Any, words: str) -> None:
    neuron, unit = _break(path, value)
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "schema"
    assert failure["neuron_id"] == neuron["neuron_id"]
    assert words in failure["reason"]


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("learning_state.weights.3", _other_float(1.7976931348623157e308), "weights[3] differs"),
        ("learning_state.weights.1", 0.0, "weights[1] differs"),  # -0.0 in the neuron
        ("learning_state.weights.2", 0.0, "weights[2] differs"),  # a subnormal in the neuron
        ("learning_state.biases.0", _other_float(0.01), "biases[0] differs"),
        ("learning_state.learning_rate", _other_float(0.001), "learning_rate differs"),
        ("learning_state.momentum", 0.9, "momentum differs"),
        ("cognitive_state.activation_level", -0.75, "activation_level differs"),
        ("cognitive_state.working_memory", {"note": "other"}, "working_memory"),
        ("cognitive_state.attention_focus", None, "attention_focus"),
        ("cognitive_state.processing_mode", "sync", "processing_mode"),
        ("learning_state.gradient_history", [[0.1]], "gradient_history"),
        ("metadata.original_id", "00000000-0000-4000-8000-000000000000", "original_id"),
        ("metadata.original_type", "reflex", "original_type"),
        ("metadata.created_at", "2026-01-01T00:00:01Z", "created_at"),
    ],
)
def test_integrity_validator(path: str, value: Any, words: str) -> None:
    neuron, unit = _break(path, value)
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "integrity"
    assert words in failure["reason"]


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("learning_rate", "learning_state.learning_rate"),
        ("momentum", "learning_state.momentum"),
        ("activation", "cognitive_state.activation_level"),
    ],
)
@pytest.mark.parametrize(("before", "after"), [(0.0, -0.0), (-0.0, 0.0), (_nan(1), _nan(2))])
def test_integrity_validator_compares_scalars_bit_for_bit(
    field: str, path: str, before: float, after: float
) -> None:
    neuron = make_neuron(**{field: before})
    unit = units.convert(neuron, MIGRATED_AT)
    assert units.validate(neuron, unit) is None
    section, key = path.split(".")
    unit[section][key] = after  # type: ignore[literal-required]
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "integrity"
    assert failure["reason"].startswith(f"{key} differs")


@pytest.mark.parametrize("name", ["weights", "biases"])
def test_integrity_validator_catches_a_changed_length(name: str) -> None:
    neuron, unit = _valid()
    unit["learning_state"][name].append(0.0)
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "integrity"
    assert f"{name} length differs" in failure["reason"]


def test_integrity_validator_compares_nan_payloads() -> None:
    neuron = make_neuron(weights=[_nan(1)])
    unit = units.convert(neuron, MIGRATED_AT)
    assert units.validate(neuron, unit) is None  # the very same object
    unit["learning_state"]["weights"] = [_nan(2)]
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert (failure["validator"], failure["reason"][:18]) == ("integrity", "weights[0] differs")


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("connections.2.target_id", "a0000000-0000-4000-8000-000000000009", "connection 2 target differs"),
        ("connections.1.weight", 0.0, "connection 1 weight differs"),  # -0.0 in the neuron
        ("connections.0.weight", _other_float(0.5), "connection 0 weight differs"),
        ("connections.3.connection_type", "Lateral", "connection 3 type differs"),
        ("connections.0.connection_type", "Backward", "connection 0 type differs"),
    ],
)
def test_consistency_validator(path: str, value: Any, words: str) -> None:
    neuron, unit = _break(path, value)
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "consistency"
    assert words in failure["reason"]


def test_consistency_validator_catches_a_lost_connection() -> None:
    neuron, unit = _valid()
    unit["connections"].pop()
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "consistency"
    assert "count differs" in failure["reason"]


def test_consistency_validator_catches_a_changed_order() -> None:
    neuron, unit = _valid()
    unit["connections"].reverse()
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "consistency"
    assert "connection 0 target differs" in failure["reason"]


def test_first_failure_wins() -> None:
    neuron, unit = _break("layer", "L9")
    unit["learning_state"]["weights"][0] = 99.0
    unit["connections"].clear()
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "schema"

    neuron, unit = _break("learning_state.weights.0", 99.0)
    unit["connections"].clear()
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "integrity"


# ---------------------------------------------------------------------------------------- fingerprints


def test_fingerprint_of_unit_equals_fingerprint_of_neuron() -> None:
    neuron = make_neuron()
    unit = units.convert(neuron, MIGRATED_AT)
    assert fingerprint_unit(unit) == fingerprint_neuron(neuron)
    assert 0 <= fingerprint_neuron(neuron) < 2**64


def test_fingerprint_ignores_migrated_at_only() -> None:
    neuron = make_neuron()
    a = units.convert(neuron, "2026-01-01T00:00:00Z")
    b = units.convert(neuron, "2030-01-01T00:00:00Z")
    assert fingerprint_unit(a) == fingerprint_unit(b)


def test_fingerprint_sees_a_broken_unit() -> None:
    neuron = make_neuron()
    good = fingerprint_neuron(neuron)
    for path, value in [
        ("learning_state.weights.1", 0.0),
        ("connections.0.connection_type", "Lateral"),
        ("metadata.original_id", "00000000-0000-4000-8000-000000000000"),
        ("layer", "L3"),
        ("cognitive_state.attention_focus", None),
    ]:
        _, unit = _break(path, value)
        assert fingerprint_unit(unit) != good, path


def test_combine_is_a_sum_modulo_2_64() -> None:
    a, b, c = (fingerprint_neuron(make_neuron(activation=x)) for x in (0.1, 0.2, 0.3))
    assert combine(combine(a, b), c) == combine(combine(c, a), b)
    assert combine(2**64 - 1, 1) == 0
    assert combine(2**64 - 1, 2**64 - 1) == 2**64 - 2
    once = combine(0, a)
    twice = combine(once, a)
    assert twice != once
    assert twice != 0  # XOR would cancel a duplicate out


# ------------------------------------------------------------------------------------- target encoding


def test_encode_unit_layout() -> None:
    unit = units.convert(make_neuron(), MIGRATED_AT)
    row = units.encode_unit(unit)
    assert len(row) == len(UNIT_COLUMNS)
    assert row[0] == unit["unit_id"]
    assert row[1] == unit["layer"]
    for column, text in zip(UNIT_COLUMNS[2:], row[2:], strict=True):
        assert column in UNIT_JSON_COLUMNS
        assert isinstance(text, str)
        assert ", " not in text.replace('", "', "")  # compact separators
        assert "\\u" not in text  # UTF-8 as is, not escaped
    assert "🧠" in row[2]
    assert "NaN" not in row[3]


def test_encode_decode_unit_round_trip_is_bit_exact() -> None:
    unit = units.convert(make_neuron(), MIGRATED_AT)
    back = units.decode_unit(unit_row(units.encode_unit(unit)))
    assert exact(back) == exact(unit)
    assert fingerprint_unit(back) == fingerprint_unit(unit)


def test_decode_unit_accepts_bytes() -> None:
    unit = units.convert(make_neuron(), MIGRATED_AT)
    row = unit_row(units.encode_unit(unit))
    for column in UNIT_JSON_COLUMNS:
        row[column] = row[column].encode()
    assert exact(units.decode_unit(row)) == exact(unit)


@pytest.mark.parametrize(
    ("column", "text", "words"),
    [
        ("learning_state", "{", "learning_state: invalid JSON"),
        ("learning_state", '{"weights":[NaN]}', "non-finite"),
        ("connections", "{}", "connections"),
        ("metadata", "[]", "metadata"),
        ("cognitive_state", '{"activation_level":1.0}', "attention_focus"),
    ],
)
def test_decode_unit_refuses_a_malformed_row(column: str, text: str, words: str) -> None:
    row = unit_row(units.encode_unit(units.convert(make_neuron(), MIGRATED_AT)))
    row[column] = text
    with pytest.raises(ValueError, match=words):
        units.decode_unit(row)


def test_decode_unit_refuses_a_missing_column() -> None:
    row = unit_row(units.encode_unit(units.convert(make_neuron(), MIGRATED_AT)))
    del row["layer"]
    with pytest.raises(ValueError, match="layer: column missing"):
        units.decode_unit(row)


# -------------------------------------------------------------------------------------- migrate_row


def test_migrate_row_equals_the_separate_steps() -> None:
    neuron = make_neuron()
    result = pipeline.migrate_row(to_raw(neuron), MIGRATED_AT)
    assert isinstance(result, tuple)
    row, fingerprint = result
    assert fingerprint == fingerprint_neuron(neuron)
    expected = units.convert(neuron, MIGRATED_AT)
    assert exact(units.decode_unit(unit_row(row))) == exact(expected)
    assert row[:2] == units.encode_unit(expected)[:2]
    assert row[4:] == units.encode_unit(expected)[4:]


def test_migrate_row_returns_the_failure() -> None:
    result = pipeline.migrate_row(to_raw(make_neuron(), weights="[1.0,"), MIGRATED_AT)
    assert isinstance(result, dict)
    assert result["validator"] == "decode"
    assert result["reason"].startswith("weights: invalid JSON")
