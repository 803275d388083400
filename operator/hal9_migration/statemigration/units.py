"""Hierarchical units (DESIGN §5): built from decoded neurons, validated, and as target rows.

Pure and per row: no store, no I/O.

- ``convert`` keeps the very float objects of weights, biases and connection weights, so they are
  bit-exact by construction; ``validate`` checks that anyway, on the packed bytes, with the two
  other validators of DESIGN §5 (schema, consistency).
- ``encode_unit`` / ``decode_unit``: a unit as a target row (JSON columns as compact text) and back,
  bit-exact (-0.0, subnormals; integers a source wrote without a point read back as their floats).
"""

from __future__ import annotations

import json
import struct
from array import array
from collections.abc import Mapping
from operator import is_
from typing import Any, Final, cast

import orjson

from . import jsontext
from .rows import (
    UNIT_COLUMNS,
    UNIT_JSON_COLUMNS,
    ConnectionType,
    Failure,
    FlatNeuron,
    HierarchicalUnit,
    Layer,
    failure,
    is_uuid,
)

__all__ = [
    "DEFAULT_MOMENTUM",
    "LAYERS",
    "assign_layer",
    "connection_type",
    "convert",
    "decode_unit",
    "encode_unit",
    "unit_shape",
    "validate",
]

DEFAULT_MOMENTUM: Final = 0.9
LAYERS: Final[tuple[Layer, ...]] = ("L1", "L2", "L3", "L4", "L5")
_LAYER_SET: Final = frozenset(LAYERS)

# Type names match whole and case-insensitively (DESIGN §5); anything else falls to behaviour.
_LAYER_BY_TYPE: Final[dict[str, Layer]] = {
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
_CONNECTION_TYPES: Final[dict[str, ConnectionType]] = {
    "forward": "Forward",
    "backward": "Backward",
    "lateral": "Lateral",
}
_UNIT_CONNECTION_TYPES: Final = frozenset(_CONNECTION_TYPES.values())
_PROCESSING_MODES: Final = frozenset(("async", "sync"))
_FLOAT_ONLY: Final = frozenset((float,))
_DICT_ONLY: Final = frozenset((dict,))
_GOOD_CONNECTION: Final = frozenset(((str, float, True),))
_F64: Final = struct.Struct("<d")


# -------------------------------------------------------------------------------------------- convert


def assign_layer(neuron_type: str, avg_response_time: float, connection_count: int) -> Layer:
    """DESIGN §5: the type decides when it is a known one (whole name, any case); else behaviour."""
    layer = _LAYER_BY_TYPE.get(neuron_type)
    if layer is None:
        layer = _LAYER_BY_TYPE.get(neuron_type.lower())
        if layer is None:
            if avg_response_time < 10.0:
                return "L1"
            if avg_response_time < 200.0:
                return "L2"
            return "L4" if connection_count > 10 else "L3"
    return layer


def connection_type(conn_type: str) -> ConnectionType:
    """forward/backward/lateral in any case → Forward/Backward/Lateral; anything else → Forward."""
    mapped = _CONNECTION_TYPES.get(conn_type)
    if mapped is None:
        return _CONNECTION_TYPES.get(conn_type.lower(), "Forward")
    return mapped


# Every spelling met so far → its type (bounded: a hostile source cannot grow it without end).
_TYPE_OF_SPELLING: dict[str, ConnectionType] = dict(_CONNECTION_TYPES)
_SPELLINGS_KEPT: Final = 4096


def connection_types(conn_types: list[str]) -> list[ConnectionType]:
    """``connection_type`` of each, by one dictionary look-up per element for spellings seen before."""
    mapped = list(map(_TYPE_OF_SPELLING.get, conn_types))
    if None not in mapped:
        return cast("list[ConnectionType]", mapped)
    if len(_TYPE_OF_SPELLING) < _SPELLINGS_KEPT:
        for spelling in conn_types:
            if len(spelling) <= 32:
                _TYPE_OF_SPELLING[spelling] = connection_type(spelling)
    return [connection_type(t) for t in conn_types]


def convert(neuron: FlatNeuron, migrated_at: str) -> HierarchicalUnit:
    """A decoded neuron → its hierarchical unit (DESIGN §5). Floats are the same objects."""
    neuron_id = neuron["neuron_id"]
    momentum = neuron["momentum"]
    conns = neuron["connections"]
    kinds = connection_types([c["conn_type"] for c in conns])
    return {
        "unit_id": neuron_id,
        "layer": assign_layer(neuron["neuron_type"], neuron["avg_response_time"], neuron["connection_count"]),
        "cognitive_state": {
            "activation_level": neuron["activation"],
            "attention_focus": neuron["context"].get("focus"),
            "working_memory": neuron["memory"],
            "processing_mode": "async" if neuron["is_async"] else "sync",
        },
        "learning_state": {
            "weights": list(neuron["weights"]),
            "biases": list(neuron["biases"]),
            "learning_rate": neuron["learning_rate"],
            "momentum": DEFAULT_MOMENTUM if momentum is None else momentum,
            "gradient_history": [],
        },
        "connections": [
            {"target_id": c["target"], "connection_type": kind, "weight": c["weight"]}
            for c, kind in zip(conns, kinds, strict=True)
        ],
        "metadata": {
            "original_id": neuron_id,
            "original_type": neuron["neuron_type"],
            "created_at": neuron["created_at"],
            "migrated_at": migrated_at,
        },
    }


# ------------------------------------------------------------------------------------------- validate


def _is_float_list(value: object) -> bool:
    return type(value) is list and (not value or set(map(type, value)) == _FLOAT_ONLY)


def unit_shape(unit: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a unit (ids, layer, required fields, types), or None."""
    unit_id = unit.get("unit_id")
    if type(unit_id) is not str or not is_uuid(unit_id):
        return f"unit_id {unit_id!r} is not a UUID"[:200]
    layer = unit.get("layer")
    if layer not in _LAYER_SET:
        return f"layer {layer!r} is not one of L1..L5"[:200]

    cs = unit.get("cognitive_state")
    if type(cs) is not dict:
        return "cognitive_state missing or not an object"
    if type(cs.get("activation_level")) is not float:
        return "cognitive_state.activation_level missing or not a number"
    if "attention_focus" not in cs:
        return "cognitive_state.attention_focus missing"
    if type(cs.get("working_memory")) is not dict:
        return "cognitive_state.working_memory missing or not an object"
    if cs.get("processing_mode") not in _PROCESSING_MODES:
        return "cognitive_state.processing_mode missing or not async|sync"

    ls = unit.get("learning_state")
    if type(ls) is not dict:
        return "learning_state missing or not an object"
    for key in ("weights", "biases"):
        if not _is_float_list(ls.get(key)):
            return f"learning_state.{key} missing or not an array of numbers"
    for key in ("learning_rate", "momentum"):
        if type(ls.get(key)) is not float:
            return f"learning_state.{key} missing or not a number"
    history = ls.get("gradient_history")
    if type(history) is not list or (history and not all(_is_float_list(h) for h in history)):
        return "learning_state.gradient_history missing or not an array of arrays of numbers"

    conns = unit.get("connections")
    if type(conns) is not list:
        return "connections missing or not an array"
    if not conns or (
        set(map(type, conns)) == _DICT_ONLY
        and {
            (
                type(c.get("target_id")),
                type(c.get("weight")),
                c.get("connection_type") in _UNIT_CONNECTION_TYPES,
            )
            for c in conns
        }
        == _GOOD_CONNECTION
    ):
        conns = []  # all well-formed, checked at once; else find the first that is not
    for i, conn in enumerate(conns):
        if (
            type(conn) is not dict
            or type(conn.get("target_id")) is not str
            or type(conn.get("weight")) is not float
            or conn.get("connection_type") not in _UNIT_CONNECTION_TYPES
        ):
            return f"connection {i} is not {{target_id, connection_type Forward|Backward|Lateral, weight}}"

    md = unit.get("metadata")
    if type(md) is not dict:
        return "metadata missing or not an object"
    for key in ("original_id", "original_type", "created_at", "migrated_at"):
        if type(md.get(key)) is not str:
            return f"metadata.{key} missing or not a string"
    return None


def _bits(value: float) -> bytes:
    return _F64.pack(value)


def _packed(values: list[float]) -> bytes:
    return array("d", values).tobytes()


def _list_differs(name: str, expected: list[float], actual: list[float]) -> str | None:
    if len(expected) != len(actual):
        return f"{name} length differs: {len(actual)} in the unit, {len(expected)} in the neuron"
    if all(map(is_, expected, actual)) or _packed(expected) == _packed(
        actual
    ):  # the same floats, or equal bits
        return None
    for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
        if _bits(a) != _bits(b):
            return f"{name}[{i}] differs: {b!r} in the unit, {a!r} in the neuron"
    return None  # pragma: no cover - the packed bytes differed, so some element does


def _same_json(a: object, b: object) -> bool:
    return a is b or jsontext.canonical(a) == jsontext.canonical(b)


def _integrity(neuron: FlatNeuron, unit: HierarchicalUnit) -> str | None:
    ls = unit["learning_state"]
    problem = _list_differs("weights", neuron["weights"], ls["weights"]) or _list_differs(
        "biases", neuron["biases"], ls["biases"]
    )
    if problem:
        return problem
    momentum = neuron["momentum"]
    cs = unit["cognitive_state"]
    for name, expected, actual in (
        ("learning_rate", neuron["learning_rate"], ls["learning_rate"]),
        ("momentum", DEFAULT_MOMENTUM if momentum is None else momentum, ls["momentum"]),
        ("activation_level", neuron["activation"], cs["activation_level"]),
    ):
        if expected is not actual and _bits(expected) != _bits(actual):
            return f"{name} differs: {actual!r} in the unit, {expected!r} in the neuron"
    if ls["gradient_history"]:
        return "gradient_history is not empty"
    if not _same_json(neuron["memory"], cs["working_memory"]):
        return "working_memory differs from memory"
    if not _same_json(neuron["context"].get("focus"), cs["attention_focus"]):
        return "attention_focus differs from context.focus"
    if cs["processing_mode"] != ("async" if neuron["is_async"] else "sync"):
        return f"processing_mode {cs['processing_mode']} differs from is_async={neuron['is_async']}"
    md = unit["metadata"]
    for name, expected_text, actual_text in (
        ("original_id", neuron["neuron_id"], md["original_id"]),
        ("original_type", neuron["neuron_type"], md["original_type"]),
        ("created_at", neuron["created_at"], md["created_at"]),
    ):
        if expected_text != actual_text:
            return f"metadata.{name} differs: {actual_text!r} in the unit, {expected_text!r} in the neuron"
    return None


def _consistency(neuron: FlatNeuron, unit: HierarchicalUnit) -> str | None:
    flat = neuron["connections"]
    conns = unit["connections"]
    if len(flat) != len(conns):
        return f"connection count differs: {len(conns)} in the unit, {len(flat)} in the neuron"
    expected_types = connection_types([c["conn_type"] for c in flat])
    if (
        [c["target"] for c in flat] == [c["target_id"] for c in conns]
        and all(map(is_, [c["weight"] for c in flat], [c["weight"] for c in conns]))
        and expected_types == [c["connection_type"] for c in conns]
    ):
        return None  # the common case, checked a list at a time; else find the first difference
    for i, (src, dst, expected) in enumerate(zip(flat, conns, expected_types, strict=True)):
        if src["target"] != dst["target_id"]:
            return f"connection {i} target differs: {dst['target_id']!r} in the unit, {src['target']!r}"
        weight = src["weight"]
        if weight is not dst["weight"] and _bits(weight) != _bits(dst["weight"]):
            return f"connection {i} weight differs: {dst['weight']!r} in the unit, {weight!r}"
        if dst["connection_type"] != expected:
            return f"connection {i} type differs: {dst['connection_type']} in the unit, {expected} expected"
    return None


def validate(neuron: FlatNeuron, unit: HierarchicalUnit) -> Failure | None:
    """The three validators of DESIGN §5, in order; the first failure wins.

    - schema: unit_id a UUID equal to neuron_id, layer in L1..L5 and the one the rule gives, every
      required field present with its type;
    - integrity: weights, biases, learning_rate, momentum, activation bit-exact (packed bytes, so -0.0
      vs 0.0 and NaN payloads count); memory, focus, processing mode and metadata carried over;
    - consistency: every connection, in order: target, bit-exact weight, mapped type.
    """
    neuron_id = neuron["neuron_id"]
    problem = unit_shape(unit)
    if problem is None and unit["unit_id"] != neuron_id:
        problem = f"unit_id {unit['unit_id']} differs from neuron_id {neuron_id}"
    if problem is None:
        expected = assign_layer(
            neuron["neuron_type"], neuron["avg_response_time"], neuron["connection_count"]
        )
        if unit["layer"] != expected:
            problem = f"layer {unit['layer']} differs from the assignment rule's {expected}"
    if problem is not None:
        return failure(neuron_id, "schema", problem)
    problem = _integrity(neuron, unit)
    if problem is not None:
        return failure(neuron_id, "integrity", problem)
    problem = _consistency(neuron, unit)
    if problem is not None:
        return failure(neuron_id, "consistency", problem)
    return None


# ------------------------------------------------------------------------------------------ target rows


def encode_unit(unit: HierarchicalUnit) -> tuple[Any, ...]:
    """A unit as a target row, in UNIT_COLUMNS order; UNIT_JSON_COLUMNS as compact JSON text.

    ValueError for NaN or infinity anywhere (JSON cannot carry them; decode never lets them in).
    """
    return (
        unit["unit_id"],
        unit["layer"],
        jsontext.compact_finite(unit["cognitive_state"]),
        jsontext.compact_finite(unit["learning_state"]),
        jsontext.compact_finite(unit["connections"]),
        jsontext.compact_finite(unit["metadata"]),
    )


def _unit_number(value: Any) -> Any:
    """An integer read back from target JSON (a source spelling such as ``1``) → its exact float."""
    if type(value) is int:
        try:
            as_float = float(value)
        except OverflowError:
            return value  # not a number a unit can hold: the shape check says so
        if as_float == value:  # decode refused integers a float does not hold exactly
            return as_float
    return value


def _unit_numbers(container: Any, key: str) -> None:
    if type(container) is dict:
        value = container.get(key)
        if type(value) is int:
            container[key] = _unit_number(value)
        elif type(value) is list and value and set(map(type, value)) != _FLOAT_ONLY:
            container[key] = [_unit_number(x) for x in value]


def _floats_read(column: str, value: Any) -> list[float]:
    """The floats of a target column that the unit holds as numbers (where orjson may have read an
    integer beyond 64 bits as a float)."""
    numbers: list[Any] = []
    if column == "learning_state" and type(value) is dict:
        for key in ("weights", "biases"):
            if type(value.get(key)) is list:
                numbers += value[key]
        numbers += [value.get("learning_rate"), value.get("momentum")]
        history = value.get("gradient_history")
        if type(history) is list:
            for item in history:
                if type(item) is list:
                    numbers += item
    elif column == "connections" and type(value) is list:
        numbers = [conn.get("weight") for conn in value if type(conn) is dict]
    return [n for n in numbers if type(n) is float]


def _read_exactly(column: str, value: Any, text: str) -> bool:
    """Whether orjson's reading of a target column is the reference's (see jsontext)."""
    if column == "metadata":  # strings only: a number there is refused whichever way it was read
        return True
    if column != "cognitive_state":  # numbers in known places: a range check first, it is cheaper
        floats = _floats_read(column, value)
        if not floats or jsontext.narrow(floats):
            return True
    try:
        return jsontext.kept_long_digits(text, orjson.dumps(value))
    except TypeError:  # nesting orjson cannot print: the reference reads it
        return False


def _reference_unit_json(column: str, text: str) -> Any:
    try:
        return jsontext.REFERENCE_UNIT.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{column}: invalid JSON: {exc.msg} at char {exc.pos}") from None
    except jsontext.NonFinite as exc:
        raise ValueError(f"{column}: non-finite number {exc}") from None
    except RecursionError:
        raise ValueError(f"{column}: invalid JSON: nested too deeply") from None


def decode_unit(row: Mapping[str, Any]) -> HierarchicalUnit:
    """A target row (keys UNIT_COLUMNS, JSON columns as text) → the unit. Inverse of encode_unit.

    Raises ValueError, naming the column or field, for a row that is not a well-formed unit (NaN or
    infinity anywhere included).
    """
    values: dict[str, Any] = {}
    for column in UNIT_COLUMNS:
        if column not in row:
            raise ValueError(f"{column}: column missing")
        value = row[column]
        if column in UNIT_JSON_COLUMNS:
            if isinstance(value, bytes | bytearray | memoryview):
                value = bytes(value).decode("utf-8")
            if isinstance(value, str):
                parsed = jsontext.fast_unit_json(value)
                if parsed is None or not _read_exactly(column, parsed, value):
                    parsed = _reference_unit_json(column, value)
                value = parsed
        values[column] = value
    learning = values["learning_state"]
    for key in ("weights", "biases", "learning_rate", "momentum"):
        _unit_numbers(learning, key)
    _unit_numbers(values["cognitive_state"], "activation_level")
    if type(values["connections"]) is list:
        for conn in values["connections"]:
            _unit_numbers(conn, "weight")
    problem = unit_shape(values)
    if problem is not None:
        raise ValueError(problem)
    return cast(HierarchicalUnit, values)
