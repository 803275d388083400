"""Property tests: any valid flat state converts, validates, and keeps what it must, bit for bit."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any, cast

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hal9_migration.statemigration import flat, pipeline, units
from hal9_migration.statemigration.fingerprint import fingerprint_neuron, fingerprint_unit
from hal9_migration.statemigration.rows import FlatNeuron
from tests.unit.statemigration.conftest import (
    MIGRATED_AT,
    clone,
    decoded,
    exact,
    finite_floats,
    flat_neurons,
    float_bits,
    fresh_uuid,
    garbled_rows,
    json_values,
    to_raw,
    unit_row,
)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(neuron=flat_neurons)
def test_any_valid_flat_state_converts_validates_and_keeps_its_content(neuron: FlatNeuron) -> None:
    decoded_ = decoded(to_raw(neuron))
    assert exact(decoded_) == exact(neuron)

    unit = units.convert(decoded_, MIGRATED_AT)
    assert units.validate(decoded_, unit) is None

    ls = unit["learning_state"]
    assert float_bits(ls["weights"]) == float_bits(neuron["weights"])
    assert float_bits(ls["biases"]) == float_bits(neuron["biases"])
    assert [c["target_id"] for c in unit["connections"]] == [c["target"] for c in neuron["connections"]]
    assert float_bits([c["weight"] for c in unit["connections"]]) == float_bits(
        [c["weight"] for c in neuron["connections"]]
    )
    assert fingerprint_unit(unit) == fingerprint_neuron(decoded_)


@PROPERTY
@given(neuron=flat_neurons)
def test_encode_decode_unit_round_trip(neuron: FlatNeuron) -> None:
    unit = units.convert(neuron, MIGRATED_AT)
    back = units.decode_unit(unit_row(units.encode_unit(unit)))
    assert exact(back) == exact(unit)
    assert fingerprint_unit(back) == fingerprint_neuron(neuron)


def _spell(value: Any, draw: st.DrawFn) -> str:
    """Another valid JSON spelling of the same value: spacing, and integral floats as integers."""
    if isinstance(value, list) and all(type(x) is float for x in value):
        items = []
        for x in value:
            integral = x.is_integer() and abs(x) < 2**53 and not (x == 0 and struct.pack("<d", x)[7])
            items.append(str(int(x)) if integral and draw(st.booleans()) else repr(x))
        return "[ " + " ,\n ".join(items) + " ]"
    return json.dumps(value, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))


@st.composite
def spelled_rows(draw: st.DrawFn) -> tuple[FlatNeuron, dict[str, Any]]:
    neuron = cast(FlatNeuron, draw(flat_neurons))
    raw = to_raw(neuron)
    for column in ("weights", "biases", "memory", "context", "connections"):
        raw[column] = _spell(neuron[column], draw)
    return neuron, raw


@PROPERTY
@given(case=spelled_rows())
def test_migrate_row_writes_what_the_source_holds_however_it_is_spelled(
    case: tuple[FlatNeuron, dict[str, Any]],
) -> None:
    neuron, raw = case
    result = pipeline.migrate_row(raw, MIGRATED_AT)
    assert isinstance(result, tuple), result
    row, fingerprint = result
    assert fingerprint == fingerprint_neuron(neuron)
    back = units.decode_unit(unit_row(row))
    assert exact(back) == exact(units.convert(neuron, MIGRATED_AT))
    assert fingerprint_unit(back) == fingerprint


# ------------------------------------------------------------------------ fingerprint sensitivity


def _different_float(value: float, draw: st.DrawFn) -> float:
    other = draw(finite_floats)
    assume(struct.pack("<d", other) != struct.pack("<d", value))
    return other


def _mutate_list(values: list[float], draw: st.DrawFn) -> None:
    kind = draw(st.sampled_from(["change", "append", "remove"] if values else ["append"]))
    if kind == "append":
        values.insert(draw(st.integers(0, len(values))), draw(finite_floats))
    elif kind == "remove":
        values.pop(draw(st.integers(0, len(values) - 1)))
    else:
        i = draw(st.integers(0, len(values) - 1))
        values[i] = _different_float(values[i], draw)


def _canonical(value: Any) -> str:
    return json.dumps(exact_json(value), sort_keys=True)


def exact_json(value: Any) -> Any:
    if type(value) is float:
        return ["float", struct.pack("<d", value).hex()]
    if isinstance(value, dict):
        return {k: exact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact_json(v) for v in value]
    return value


def _conn_type_other_than(current: str, draw: st.DrawFn) -> str:
    mapped = units.connection_type(current)
    return draw(st.sampled_from([t for t in ("forward", "Backward", "LATERAL") if t.capitalize() != mapped]))


def m_id(n: FlatNeuron, draw: st.DrawFn) -> None:
    n["neuron_id"] = fresh_uuid(n["neuron_id"])


def m_type(n: FlatNeuron, draw: st.DrawFn) -> None:
    n["neuron_type"] = n["neuron_type"] + draw(st.sampled_from(["x", " ", "é"]))


def m_activation(n: FlatNeuron, draw: st.DrawFn) -> None:
    n["activation"] = _different_float(n["activation"], draw)


def m_weights(n: FlatNeuron, draw: st.DrawFn) -> None:
    _mutate_list(n["weights"], draw)


def m_biases(n: FlatNeuron, draw: st.DrawFn) -> None:
    _mutate_list(n["biases"], draw)


def m_learning_rate(n: FlatNeuron, draw: st.DrawFn) -> None:
    n["learning_rate"] = _different_float(n["learning_rate"], draw)


def m_momentum(n: FlatNeuron, draw: st.DrawFn) -> None:
    effective = 0.9 if n["momentum"] is None else n["momentum"]
    n["momentum"] = _different_float(effective, draw)


def m_connection(n: FlatNeuron, draw: st.DrawFn) -> None:
    conns = n["connections"]
    kinds = ["add"] + (["target", "weight", "type", "remove"] if conns else [])
    if len(conns) > 1:
        kinds.append("swap")
    kind = draw(st.sampled_from(kinds))
    if kind == "add":
        conns.append({"target": fresh_uuid(""), "weight": draw(finite_floats), "conn_type": "forward"})
        return
    i = draw(st.integers(0, len(conns) - 1))
    if kind == "target":
        conns[i]["target"] = conns[i]["target"] + "x"
    elif kind == "weight":
        conns[i]["weight"] = _different_float(conns[i]["weight"], draw)
    elif kind == "type":
        conns[i]["conn_type"] = _conn_type_other_than(conns[i]["conn_type"], draw)
    elif kind == "remove":
        conns.pop(i)
    else:
        j = draw(st.integers(0, len(conns) - 1))
        assume(_canonical(conns[i]["target"]) != _canonical(conns[j]["target"]))
        conns[i], conns[j] = conns[j], conns[i]


def m_memory(n: FlatNeuron, draw: st.DrawFn) -> None:
    before = _canonical(n["memory"])
    key = draw(st.text(max_size=3))
    n["memory"][key] = draw(json_values)
    assume(_canonical(n["memory"]) != before)


def m_focus(n: FlatNeuron, draw: st.DrawFn) -> None:
    before = _canonical(n["context"].get("focus"))
    n["context"]["focus"] = draw(json_values)
    assume(_canonical(n["context"]["focus"]) != before)


def m_is_async(n: FlatNeuron, draw: st.DrawFn) -> None:
    n["is_async"] = not n["is_async"]


def m_created_at(n: FlatNeuron, draw: st.DrawFn) -> None:
    n["created_at"] = (
        n["created_at"].replace("Z", "+00:00") if n["created_at"].endswith("Z") else "2000-01-01"
    )


MUTATIONS = [
    m_id,
    m_type,
    m_activation,
    m_weights,
    m_biases,
    m_learning_rate,
    m_momentum,
    m_connection,
    m_memory,
    m_focus,
    m_is_async,
    m_created_at,
]


@PROPERTY
@given(neuron=flat_neurons, mutate=st.sampled_from(MUTATIONS), data=st.data())
def test_changing_any_preserved_field_changes_the_fingerprint(
    neuron: FlatNeuron, mutate: Callable[[FlatNeuron, st.DrawFn], None], data: st.DataObject
) -> None:
    changed = clone(neuron)
    mutate(changed, data.draw)  # type: ignore[arg-type]
    assert fingerprint_neuron(changed) != fingerprint_neuron(neuron), mutate.__name__
    # ... and the target side sees the same change.
    assert fingerprint_unit(units.convert(changed, MIGRATED_AT)) != fingerprint_unit(
        units.convert(neuron, MIGRATED_AT)
    )


@PROPERTY
@given(neuron=flat_neurons, rt=st.floats(allow_nan=False), count=st.integers(0, 10**6))
def test_behaviour_figures_count_only_through_the_layer(neuron: FlatNeuron, rt: float, count: int) -> None:
    moved = clone(neuron)
    moved["avg_response_time"] = rt
    moved["connection_count"] = count
    same_layer = units.assign_layer(moved["neuron_type"], rt, count) == units.assign_layer(
        neuron["neuron_type"], neuron["avg_response_time"], neuron["connection_count"]
    )
    assert (fingerprint_neuron(moved) == fingerprint_neuron(neuron)) == same_layer


# ----------------------------------------------------------------------------------- decode never raises


@PROPERTY
@given(raw=garbled_rows())
def test_decode_never_raises_on_garbage_in_any_columns(raw: dict[str, Any]) -> None:
    result = flat.decode(raw)
    if flat.is_failure(result):
        assert result["validator"] in ("decode", "schema")
        assert result["reason"]
    else:  # garbage that happens to be valid must then migrate cleanly
        result = cast(FlatNeuron, result)
        unit = units.convert(result, MIGRATED_AT)
        assert units.validate(result, unit) is None
        assert fingerprint_unit(unit) == fingerprint_neuron(result)
        assert isinstance(pipeline.migrate_row(raw, MIGRATED_AT), tuple)
