"""Shared helpers for the state-migration unit tests: sample neurons, source rows, strategies.

Test modules import these names from ``tests.unit.statemigration.conftest``.
"""

from __future__ import annotations

import copy
import json
import struct
import uuid
from datetime import UTC
from typing import Any, cast

from hypothesis import strategies as st

from hal9_migration.statemigration import flat
from hal9_migration.statemigration.rows import (
    FLAT_COLUMNS,
    FLAT_JSON_COLUMNS,
    UNIT_COLUMNS,
    FlatNeuron,
    HierarchicalUnit,
)

MIGRATED_AT = "2026-03-01T12:00:00Z"

# DESIGN §5's layer table, written out here independently of the implementation.
TYPE_LAYERS = {
    "reflex": "L1",
    "reactive": "L1",
    "executor": "L2",
    "implementer": "L2",
    "coordinator": "L3",
    "manager": "L3",
    "planner": "L4",
    "strategist": "L4",
    "visionary": "L5",
    "architect": "L5",
}


def make_neuron(**overrides: Any) -> FlatNeuron:
    """A valid decoded neuron of an unknown type (so the behaviour rule decides its layer: L2)."""
    neuron: dict[str, Any] = {
        "neuron_id": "3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1b",
        "neuron_type": "sensor",
        "activation": 0.75,
        "weights": [0.1, -0.0, 5e-324, 1.7976931348623157e308, -2.5, 0.3333333333333333],
        "biases": [0.01, -0.02],
        "learning_rate": 0.001,
        "momentum": 0.5,
        "connections": [
            {"target": "a0000000-0000-4000-8000-000000000001", "weight": 0.5, "conn_type": "forward"},
            {"target": "a0000000-0000-4000-8000-000000000002", "weight": -0.0, "conn_type": "BACKWARD"},
            {"target": "a0000000-0000-4000-8000-000000000003", "weight": 1e-310, "conn_type": "Lateral"},
            {"target": "a0000000-0000-4000-8000-000000000004", "weight": 2.0, "conn_type": "inhibitory"},
        ],
        "memory": {"note": "naïve 🧠 مرحبا", "n": 3, "nested": {"x": [1, 2.5, None, True]}},
        "context": {"focus": {"topic": "東京"}, "task": "route"},
        "avg_response_time": 42.0,
        "connection_count": 4,
        "is_async": True,
        "created_at": "2026-01-01T00:00:00Z",
    }
    neuron.update(overrides)
    return neuron  # type: ignore[return-value]


def to_raw(neuron: FlatNeuron | dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The source row a store would give for ``neuron``: JSON columns as text."""
    raw = {
        column: json.dumps(neuron[column], ensure_ascii=False)  # type: ignore[literal-required]
        if column in FLAT_JSON_COLUMNS
        else neuron[column]  # type: ignore[literal-required]
        for column in FLAT_COLUMNS
    }
    raw.update(overrides)
    return raw


def decoded(raw: Any) -> FlatNeuron:
    """decode, asserting it did not fail."""
    result = flat.decode(raw)
    assert not flat.is_failure(result), result
    return cast(FlatNeuron, result)


def unit_row(encoded: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(UNIT_COLUMNS, encoded, strict=True))


def exact(value: Any) -> Any:
    """``value`` with every float replaced by its IEEE 754 bytes, so == compares bit for bit.

    Plain == would call -0.0 and 0.0 equal, and 1 and 1.0 too; this does not.
    """
    if type(value) is float:
        return ("float", struct.pack("<d", value))
    if isinstance(value, dict):
        return {key: exact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [exact(item) for item in value]
    return value


def float_bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def clone(neuron: FlatNeuron) -> FlatNeuron:
    return copy.deepcopy(neuron)


def clone_unit(unit: HierarchicalUnit) -> HierarchicalUnit:
    return copy.deepcopy(unit)


# ------------------------------------------------------------------------------------------ strategies

SPECIAL_FLOATS = [
    0.0,
    -0.0,
    5e-324,  # smallest subnormal
    -5e-324,
    2.2250738585072014e-308,  # smallest normal
    2.225073858507201e-308,  # largest subnormal
    1.7976931348623157e308,  # largest finite
    -1.7976931348623157e308,
    1e-300,
    0.1,
    9007199254740993.0,
]
finite_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(SPECIAL_FLOATS),
)

# Text that a UTF-8 store can hold (st.text draws no lone surrogates), with plenty of non-ASCII.
texts = st.text(max_size=12) | st.sampled_from(
    ["", "naïve", "🧠✨", "👩‍💻", "مرحبا", "שלום", 'q"b\\s\n\t', "\u0000"]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite_floats | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=5)


def _cased(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.capitalize(), name.swapcase()])


neuron_types = st.one_of(
    st.sampled_from(sorted(TYPE_LAYERS)).flatmap(_cased),
    texts,
    st.sampled_from(["reflexive", " reflex", "planner ", "sensor", ""]),
)
conn_types = st.one_of(
    st.sampled_from(["forward", "backward", "lateral"]).flatmap(_cased),
    texts,
)
uuids = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())
connections = st.fixed_dictionaries(
    {"target": uuids | texts, "weight": finite_floats, "conn_type": conn_types}
)
response_times = st.one_of(
    st.sampled_from([9.999, 10.0, 199.999, 200.0, 0.0, -1.0]),
    st.floats(min_value=-1e6, max_value=1e9, allow_nan=False),
)
timestamps = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    context = draw(json_objects)
    if draw(st.booleans()):
        context["focus"] = draw(json_values)
    else:
        context.pop("focus", None)
    return context


flat_neurons = st.fixed_dictionaries(
    {
        "neuron_id": uuids,
        "neuron_type": neuron_types,
        "activation": finite_floats,
        "weights": st.lists(finite_floats, max_size=40),
        "biases": st.lists(finite_floats, max_size=10),
        "learning_rate": finite_floats,
        "momentum": st.none() | finite_floats,
        "connections": st.lists(connections, max_size=10),
        "memory": json_objects,
        "context": contexts(),
        "avg_response_time": response_times,
        "connection_count": st.integers(min_value=0, max_value=10**6) | st.sampled_from([10, 11]),
        "is_async": st.booleans(),
        "created_at": timestamps,
    }
)


def fresh_uuid(avoid: str) -> str:
    while True:
        candidate = str(uuid.uuid4())
        if candidate.lower() != avoid.lower():
            return candidate


# Anything at all where a column should be: for "never raises" and "same as the reference" properties.
garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(max_size=20),
    json_values.map(json.dumps),
    st.text().map(lambda t: "[" + t),
)


@st.composite
def garbled_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A valid row with garbage in, or missing, one or more of its columns."""
    raw = to_raw(draw(flat_neurons))
    for column in draw(st.sets(st.sampled_from(FLAT_COLUMNS), min_size=1)):
        if draw(st.booleans()):
            raw[column] = draw(garbage)
        else:
            del raw[column]
    return raw
