"""Per-row work of the state migration (DESIGN §5): decode, convert, validate, fingerprint, encode.

Everything here is pure and per-row: no store, no I/O. For each source row the worker does
``decode`` → ``convert`` → ``validate`` → ``encode_unit`` and sums ``fingerprint_neuron`` with
``combine``; ``migrate_row`` does all of that in one call, faster. Verification sums
``fingerprint_unit(decode_unit(row))`` over the target and compares.

Contracts:

- ``decode`` never raises: any input it cannot turn into a well-formed ``FlatNeuron`` becomes a
  ``Failure`` naming the column and what is wrong with it.
- ``convert`` keeps the very float objects of weights, biases and connection weights, so they are
  bit-exact by construction; ``validate`` checks that anyway, on the packed bytes.
- ``fingerprint_unit(convert(n, t)) == fingerprint_neuron(n)`` for every decodable ``n``; a change to
  any preserved content changes the fingerprint (up to 64-bit collisions).

Speed matters (a million rows of 64 weights and 8 connections): the hot paths avoid per-element Python
work where a C-level call does (``sum`` for finiteness, ``array`` for packing, pre-built JSON coders).
Parsing and printing floats is most of the cost of a row; ``migrate_row`` saves the printing of
weights, biases and memory by writing the source's own JSON text for them, which is sound because
that text is exactly what the validated floats were parsed from (see ``migrate_row``).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys
import uuid
from array import array
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, TypeGuard, cast

from hal9_migration.statemigration.rows import (
    FLAT_COLUMNS,
    UNIT_COLUMNS,
    UNIT_JSON_COLUMNS,
    ConnectionType,
    Failure,
    FlatConnection,
    FlatNeuron,
    HierarchicalUnit,
    Layer,
)

__all__ = [
    "DEFAULT_MOMENTUM",
    "LAYERS",
    "assign_layer",
    "combine",
    "connection_type",
    "convert",
    "decode",
    "decode_unit",
    "encode_unit",
    "fingerprint_neuron",
    "fingerprint_unit",
    "is_failure",
    "migrate_row",
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

# Canonical 8-4-4-4-12 hex form only: uuid.UUID() also takes braces, "urn:uuid:", no hyphens and even
# underscores, none of which is an id this store should hold. Compiled once, at import.
_UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_FLOAT_ONLY: Final = frozenset((float,))
_BIG_ENDIAN: Final = sys.byteorder == "big"
_MASK64: Final = (1 << 64) - 1
_F64: Final = struct.Struct("<d")
_FP_HEAD: Final = struct.Struct("<QBIII")


class _Reject(Exception):
    """Internal: one row is refused; carries the Failure's validator and reason."""

    def __init__(self, validator: str, reason: str) -> None:
        super().__init__(reason)
        self.validator = validator
        self.reason = reason


class _NonFinite(Exception):
    """Internal: the JSON text holds NaN, Infinity or -Infinity (Python's json accepts them)."""


class _DuplicateKey(Exception):
    """Internal: a JSON object repeats a key; json would silently keep only the last value."""


def _reject_constant(token: str) -> Any:
    raise _NonFinite(token)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _finite_float(token: str) -> float:
    value = float(token)
    if value - value != 0.0:  # a literal too large for a float, e.g. 1e999
        raise _NonFinite(token)
    return value


# Source columns. Arrays of numbers need no object hook; connections need the duplicate-key check;
# memory/context also get a finiteness check per float literal (they are walked nowhere else).
_ARRAY_JSON: Final = json.JSONDecoder(parse_constant=_reject_constant)
_CONN_JSON: Final = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_pairs)
_OBJECT_JSON: Final = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_unique_pairs, parse_float=_finite_float
)
_UNIT_JSON: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _no_default(value: object) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_encoder(sort_keys: bool) -> Callable[[Any], str]:
    """Compact JSON, UTF-8 as is, never NaN (not JSON; PostgreSQL's jsonb refuses it).

    ``JSONEncoder.encode`` builds its C encoder anew on every call; for small objects that is a good
    part of the cost, so the C encoder is built once here, and used only if it behaves exactly like
    the public one on a probe (else, e.g. on another Python, the public one is used).
    """
    public = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=sort_keys
    ).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return public
    try:
        c_encode = make(
            None, _no_default, json.encoder.encode_basestring, None, ":", ",", sort_keys, False, False
        )

        def fast(value: Any) -> str:
            return "".join(c_encode(value, 0))

        probe = {"b": [1.5, -0.0, 5e-324, 10**30, 'é\n"🧠'], "a": None, "c": {"y": True, "x": False}}
        agrees = fast(probe) == public(probe)
        try:
            fast([float("nan")])
            refuses_nan = False
        except ValueError:
            refuses_nan = True
    except Exception:  # pragma: no cover - an incompatible c_make_encoder
        return public
    return fast if agrees and refuses_nan else public


# Target columns: compact. Fingerprints: compact with sorted keys, so equal objects give equal bytes.
_compact: Final = _json_encoder(sort_keys=False)
_canonical: Final = _json_encoder(sort_keys=True)
_float_text: Final = float.__repr__  # what json writes for a finite float


# --------------------------------------------------------------------------------------------- decode


_TYPE_NAMES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _text(value: str, where: str) -> str:
    """A string that can be written as UTF-8 (a lone surrogate from a JSON escape cannot)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Reject("schema", f"{where}: string is not valid Unicode (lone surrogate)") from None
    return value


def _number(value: object, where: str) -> float:
    """A finite float; an int that a float holds exactly becomes that float; bool is not a number."""
    if type(value) is float:
        if value - value == 0.0:  # false for NaN and ±inf
            return value
        raise _Reject("schema", f"{where}: non-finite number {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except OverflowError:
            raise _Reject("schema", f"{where}: integer is out of float range") from None
        if as_float != value:
            raise _Reject("schema", f"{where}: integer {value} has no exact float value")
        return as_float
    if isinstance(value, float):  # a float subclass (numpy.float64 and the like)
        return _number(float(value), where)
    raise _Reject("schema", f"{where}: expected a number, got {_type_name(value)}")


def _numbers(value: object, column: str) -> list[float]:
    """A JSON array of finite numbers, as floats. The common case (all floats) stays in C."""
    if type(value) is not list:
        raise _Reject("schema", f"{column}: expected an array of numbers, got {_type_name(value)}")
    items: list[Any] = value
    if items and set(map(type, items)) != _FLOAT_ONLY:
        items = [_number(x, f"{column}[{i}]") for i, x in enumerate(items)]
    total = sum(items)
    if total - total != 0.0:  # some element is NaN/±inf, or finite ones overflowed the sum
        for i, x in enumerate(items):
            if x - x != 0.0:
                raise _Reject("schema", f"{column}[{i}]: non-finite number {x!r}")
    return items


def _connections(value: object) -> list[FlatConnection]:
    if type(value) is not list:
        raise _Reject("schema", f"connections: expected an array of objects, got {_type_name(value)}")
    out: list[FlatConnection] = []
    for i, conn in enumerate(value):
        if type(conn) is not dict:
            raise _Reject("schema", f"connections[{i}]: expected an object, got {_type_name(conn)}")
        if len(conn) != 3 or "target" not in conn or "weight" not in conn or "conn_type" not in conn:
            raise _Reject(
                "schema",
                f"connections[{i}]: expected exactly the keys conn_type, target, weight; "
                f"got {', '.join(sorted(conn)) or 'none'}",
            )
        target = conn["target"]
        weight = conn["weight"]
        conn_type = conn["conn_type"]
        if type(target) is not str:
            raise _Reject("schema", f"connections[{i}].target: expected a string, got {_type_name(target)}")
        if type(conn_type) is not str:
            raise _Reject(
                "schema", f"connections[{i}].conn_type: expected a string, got {_type_name(conn_type)}"
            )
        if type(weight) is not float or weight - weight != 0.0:
            # an int weight becomes its float; copied, so a driver's own objects are not touched
            conn = {**conn, "weight": _number(weight, f"connections[{i}].weight")}
        if not (target.isascii() and conn_type.isascii()):
            _text(target, f"connections[{i}].target")
            _text(conn_type, f"connections[{i}].conn_type")
        out.append(cast(FlatConnection, conn))
    return out


def _object(value: object, column: str, text: str | None) -> dict[str, Any]:
    """A JSON object that survives the target's JSON and the fingerprint's UTF-8.

    Parsed from ``text`` it already has no NaN/inf (the decoder's hooks); what is left is a lone
    surrogate, which only a ``\\u`` escape or a surrogate in the text itself can produce. An object
    a driver decoded itself gets the full check: one C-level encode.
    """
    if type(value) is not dict:
        raise _Reject("schema", f"{column}: expected an object, got {_type_name(value)}")
    obj = cast("dict[str, Any]", value)
    if text is not None and "\\u" not in text:
        if not text.isascii():
            _text(text, column)
        return obj
    try:
        _compact(obj).encode("utf-8")
    except UnicodeEncodeError:
        raise _Reject("schema", f"{column}: string is not valid Unicode (lone surrogate)") from None
    except ValueError:
        raise _Reject("schema", f"{column}: non-finite number") from None
    return obj


def _json(raw: Mapping[str, Any], column: str, decoder: json.JSONDecoder) -> tuple[Any, str | None]:
    """The parsed value of a JSON column, and its text (None when a driver gave it parsed)."""
    value = raw[column]
    if type(value) is not str:
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Reject("decode", f"{column}: invalid JSON: not UTF-8 ({exc.reason})") from None
        elif isinstance(value, list | dict):  # a driver that decodes json/jsonb itself
            return value, None
        elif isinstance(value, str):
            value = str(value)
        else:
            raise _Reject("schema", f"{column}: expected JSON text, got {_type_name(value)}")
    try:
        return decoder.decode(value), value
    except json.JSONDecodeError as exc:
        raise _Reject("decode", f"{column}: invalid JSON: {exc.msg} at char {exc.pos}") from None
    except _NonFinite as exc:
        raise _Reject("schema", f"{column}: non-finite number {exc}") from None
    except _DuplicateKey as exc:
        raise _Reject("decode", f"{column}: invalid JSON: duplicate key {str(exc)[:80]!r}") from None
    except RecursionError:
        raise _Reject("decode", f"{column}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise _Reject("decode", f"{column}: invalid JSON: {exc}") from None


def _neuron_id(value: object) -> str:
    if type(value) is str:
        if _UUID_RE.match(value):
            return value
        raise _Reject("schema", f"neuron_id: {value[:64]!r} is not a UUID")
    if isinstance(value, uuid.UUID):  # a driver's uuid column
        return str(value)
    raise _Reject("schema", f"neuron_id: expected a UUID string, got {_type_name(value)}")


def _created_at(value: object) -> str:
    if type(value) is str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise _Reject("schema", f"created_at: {value[:64]!r} is not an ISO 8601 timestamp") from None
        return _text(value, "created_at")
    if isinstance(value, datetime):  # a driver's timestamp; naive ones are UTC by DESIGN §5
        stamp = value.astimezone(UTC) if value.tzinfo else value
        return stamp.replace(tzinfo=None).isoformat() + "Z"
    raise _Reject("schema", f"created_at: expected an ISO 8601 string, got {_type_name(value)}")


def _is_async(value: object) -> bool:
    if value is True or value is False:
        return value
    if type(value) is int and value in (0, 1):  # SQLite has no boolean
        return value == 1
    raise _Reject("schema", f"is_async: expected a boolean or 0/1, got {value!r}"[:200])


def _safe_id(raw: object) -> str:
    try:
        value = cast("Mapping[str, Any]", raw).get("neuron_id")
        if value is None:
            return ""
        text = value if type(value) is str else str(value)
        return text[:100]
    except Exception:
        return ""


class _Texts(NamedTuple):
    """The source's JSON text of the columns ``migrate_row`` copies as is (None: none to copy)."""

    weights: str | None
    biases: str | None
    memory: str | None


def _decode(raw: Mapping[str, Any]) -> tuple[FlatNeuron, _Texts]:
    for column in FLAT_COLUMNS:
        if column not in raw:
            raise _Reject("schema", f"{column}: column missing")
    neuron_id = _neuron_id(raw["neuron_id"])
    neuron_type = raw["neuron_type"]
    if type(neuron_type) is not str:
        raise _Reject("schema", f"neuron_type: expected a string, got {_type_name(neuron_type)}")
    _text(neuron_type, "neuron_type")
    activation = _number(raw["activation"], "activation")
    weights, weights_text = _json(raw, "weights", _ARRAY_JSON)
    biases, biases_text = _json(raw, "biases", _ARRAY_JSON)
    learning_rate = _number(raw["learning_rate"], "learning_rate")
    momentum = raw["momentum"]
    connections, _ = _json(raw, "connections", _CONN_JSON)
    memory, memory_text = _json(raw, "memory", _OBJECT_JSON)
    context, context_text = _json(raw, "context", _OBJECT_JSON)
    connection_count = raw["connection_count"]
    if type(connection_count) is not int:
        if not isinstance(connection_count, int) or isinstance(connection_count, bool):
            raise _Reject(
                "schema", f"connection_count: expected an integer, got {_type_name(connection_count)}"
            )
        connection_count = int(connection_count)
    neuron: FlatNeuron = {
        "neuron_id": neuron_id,
        "neuron_type": neuron_type,
        "activation": activation,
        "weights": _numbers(weights, "weights"),
        "biases": _numbers(biases, "biases"),
        "learning_rate": learning_rate,
        "momentum": None if momentum is None else _number(momentum, "momentum"),
        "connections": _connections(connections),
        "memory": _object(memory, "memory", memory_text),
        "context": _object(context, "context", context_text),
        "avg_response_time": _number(raw["avg_response_time"], "avg_response_time"),
        "connection_count": connection_count,
        "is_async": _is_async(raw["is_async"]),
        "created_at": _created_at(raw["created_at"]),
    }
    return neuron, _Texts(weights_text, biases_text, memory_text)


def decode(raw: Mapping[str, Any]) -> FlatNeuron | Failure:
    """One source row (keys FLAT_COLUMNS, JSON columns as text) → a FlatNeuron, or why not.

    Never raises. Invalid JSON is a ``decode`` failure; anything else wrong (missing column, wrong
    type, id not a UUID, NaN/inf anywhere) is a ``schema`` failure. Reasons start with the column.
    """
    try:
        return _decode(raw)[0]
    except _Reject as exc:
        return _failure(_safe_id(raw), exc.validator, exc.reason)
    except Exception as exc:  # a hostile Mapping, a driver type nobody foresaw: still never raise
        return _failure(_safe_id(raw), "decode", f"unreadable row: {type(exc).__name__}: {exc}"[:300])


def is_failure(result: FlatNeuron | Failure) -> TypeGuard[Failure]:
    """Whether what decode gave is a Failure (narrows the type for mypy)."""
    return "validator" in result


_REASON_MAX: Final = 500  # a reason quotes values; a hostile row must not make it huge


def _failure(neuron_id: str, validator: str, reason: str) -> Failure:
    if len(reason) > _REASON_MAX:
        reason = reason[: _REASON_MAX - 1] + "…"
    return cast(Failure, {"neuron_id": neuron_id, "validator": validator, "reason": reason})


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


def convert(neuron: FlatNeuron, migrated_at: str) -> HierarchicalUnit:
    """A decoded neuron → its hierarchical unit (DESIGN §5). Floats are the same objects."""
    neuron_id = neuron["neuron_id"]
    momentum = neuron["momentum"]
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
            {
                "target_id": c["target"],
                "connection_type": connection_type(c["conn_type"]),
                "weight": c["weight"],
            }
            for c in neuron["connections"]
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


def _unit_shape(unit: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a unit (ids, layer, required fields, types), or None."""
    unit_id = unit.get("unit_id")
    if type(unit_id) is not str or not _UUID_RE.match(unit_id):
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
    if expected is actual or _packed(expected) == _packed(actual):
        return None
    for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
        if _bits(a) != _bits(b):
            return f"{name}[{i}] differs: {b!r} in the unit, {a!r} in the neuron"
    return None  # pragma: no cover - the packed bytes differed, so some element does


def _same_json(a: object, b: object) -> bool:
    return a is b or _canonical(a) == _canonical(b)


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
    for i, (src, dst) in enumerate(zip(flat, conns, strict=True)):
        if src["target"] != dst["target_id"]:
            return f"connection {i} target differs: {dst['target_id']!r} in the unit, {src['target']!r}"
        weight = src["weight"]
        if weight is not dst["weight"] and _bits(weight) != _bits(dst["weight"]):
            return f"connection {i} weight differs: {dst['weight']!r} in the unit, {weight!r}"
        expected = connection_type(src["conn_type"])
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
    problem = _unit_shape(unit)
    if problem is None and unit["unit_id"] != neuron_id:
        problem = f"unit_id {unit['unit_id']} differs from neuron_id {neuron_id}"
    if problem is None:
        expected = assign_layer(
            neuron["neuron_type"], neuron["avg_response_time"], neuron["connection_count"]
        )
        if unit["layer"] != expected:
            problem = f"layer {unit['layer']} differs from the assignment rule's {expected}"
    if problem is not None:
        return _failure(neuron_id, "schema", problem)
    problem = _integrity(neuron, unit)
    if problem is not None:
        return _failure(neuron_id, "integrity", problem)
    problem = _consistency(neuron, unit)
    if problem is not None:
        return _failure(neuron_id, "consistency", problem)
    return None


# ---------------------------------------------------------------------------------------- fingerprint


def _digest(text_part: list[Any], floats: array[float], is_async: bool, counts: tuple[int, int, int]) -> int:
    # Strings and JSON values go through one canonical JSON array (unambiguous, sorted keys); floats
    # go as little-endian IEEE 754 bytes; a header fixes the boundaries between the parts.
    text = _canonical(text_part).encode("utf-8")
    if _BIG_ENDIAN:
        floats.byteswap()
    head = _FP_HEAD.pack(len(text), is_async, *counts)
    digest = hashlib.blake2b(head + text + floats.tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def fingerprint_neuron(neuron: FlatNeuron) -> int:
    """64-bit digest of what the migration must preserve of a neuron (see module doc)."""
    conns = neuron["connections"]
    momentum = neuron["momentum"]
    neuron_id = neuron["neuron_id"]
    floats = array(
        "d",
        (neuron["activation"], neuron["learning_rate"], DEFAULT_MOMENTUM if momentum is None else momentum),
    )
    floats.extend(neuron["weights"])
    floats.extend(neuron["biases"])
    floats.extend([c["weight"] for c in conns])
    text_part = [
        neuron_id,
        neuron_id,
        neuron["neuron_type"],
        neuron["created_at"],
        assign_layer(neuron["neuron_type"], neuron["avg_response_time"], neuron["connection_count"]),
        [c["target"] for c in conns],
        [connection_type(c["conn_type"]) for c in conns],
        neuron["memory"],
        neuron["context"].get("focus"),
    ]
    counts = (len(neuron["weights"]), len(neuron["biases"]), len(conns))
    return _digest(text_part, floats, neuron["is_async"], counts)


def fingerprint_unit(unit: HierarchicalUnit) -> int:
    """The same digest, from the target side: equal to fingerprint_neuron of the neuron it came from."""
    cs = unit["cognitive_state"]
    ls = unit["learning_state"]
    md = unit["metadata"]
    conns = unit["connections"]
    floats = array("d", (cs["activation_level"], ls["learning_rate"], ls["momentum"]))
    floats.extend(ls["weights"])
    floats.extend(ls["biases"])
    floats.extend([c["weight"] for c in conns])
    text_part = [
        unit["unit_id"],
        md["original_id"],
        md["original_type"],
        md["created_at"],
        unit["layer"],
        [c["target_id"] for c in conns],
        [c["connection_type"] for c in conns],
        cs["working_memory"],
        cs["attention_focus"],
    ]
    counts = (len(ls["weights"]), len(ls["biases"]), len(conns))
    return _digest(text_part, floats, cs["processing_mode"] == "async", counts)


def combine(a: int, b: int) -> int:
    """Order-independent aggregate of fingerprints: a sum mod 2**64 (unlike XOR, duplicates show)."""
    return (a + b) & _MASK64


# ------------------------------------------------------------------------------------ target encoding


def encode_unit(unit: HierarchicalUnit) -> tuple[Any, ...]:
    """A unit as a target row, in UNIT_COLUMNS order; UNIT_JSON_COLUMNS as compact JSON text."""
    return (
        unit["unit_id"],
        unit["layer"],
        _compact(unit["cognitive_state"]),
        _compact(unit["learning_state"]),
        _compact(unit["connections"]),
        _compact(unit["metadata"]),
    )


def _encode_with_texts(unit: HierarchicalUnit, texts: _Texts) -> tuple[Any, ...]:
    """encode_unit, but weights, biases and working memory as the source's text where there is one.

    Same keys in the same order as encode_unit; only the spelling of those three values may differ
    (spaces, ``1`` for ``1.0``), never what they parse to.
    """
    cs = unit["cognitive_state"]
    ls = unit["learning_state"]
    cognitive = (
        '{"activation_level":'
        + _float_text(cs["activation_level"])
        + ',"attention_focus":'
        + _compact(cs["attention_focus"])
        + ',"working_memory":'
        + (_compact(cs["working_memory"]) if texts.memory is None else texts.memory)
        + ',"processing_mode":"'
        + cs["processing_mode"]
        + '"}'
    )
    learning = (
        '{"weights":'
        + (_compact(ls["weights"]) if texts.weights is None else texts.weights)
        + ',"biases":'
        + (_compact(ls["biases"]) if texts.biases is None else texts.biases)
        + ',"learning_rate":'
        + _float_text(ls["learning_rate"])
        + ',"momentum":'
        + _float_text(ls["momentum"])
        + ',"gradient_history":'
        + _compact(ls["gradient_history"])
        + "}"
    )
    return (
        unit["unit_id"],
        unit["layer"],
        cognitive,
        learning,
        _compact(unit["connections"]),
        _compact(unit["metadata"]),
    )


def migrate_row(raw: Mapping[str, Any], migrated_at: str) -> tuple[tuple[Any, ...], int] | Failure:
    """decode → convert → validate → encode, in one call: ``(target row, fingerprint)`` or a Failure.

    The fingerprint is ``fingerprint_neuron`` of the decoded row, the source side of the NoDataLoss
    sum; ``fingerprint_unit(decode_unit(row))`` equals it. Never raises on a bad row (like decode).

    Faster than the separate calls: weights, biases and memory are written as the source's own JSON
    text instead of being printed again from floats. That is bit-exact by construction: the text is
    the one the validated floats were parsed from, it was checked to hold only finite numbers (an
    object, for memory) and it parses the same way on the way back (``decode_unit`` turns integers
    written without a point into the same floats ``decode`` did).
    """
    try:
        neuron, texts = _decode(raw)
    except _Reject as exc:
        return _failure(_safe_id(raw), exc.validator, exc.reason)
    except Exception as exc:
        return _failure(_safe_id(raw), "decode", f"unreadable row: {type(exc).__name__}: {exc}"[:300])
    unit = convert(neuron, migrated_at)
    failure = validate(neuron, unit)
    if failure is not None:
        return failure
    return _encode_with_texts(unit, texts), fingerprint_neuron(neuron)


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


def decode_unit(row: Mapping[str, Any]) -> HierarchicalUnit:
    """A target row (keys UNIT_COLUMNS, JSON columns as text) → the unit. Inverse of encode_unit.

    Raises ValueError, naming the column or field, for a row that is not a well-formed unit.
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
                try:
                    value = _UNIT_JSON.decode(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{column}: invalid JSON: {exc.msg} at char {exc.pos}") from None
                except _NonFinite as exc:
                    raise ValueError(f"{column}: non-finite number {exc}") from None
        values[column] = value
    learning = values["learning_state"]
    for key in ("weights", "biases", "learning_rate", "momentum"):
        _unit_numbers(learning, key)
    _unit_numbers(values["cognitive_state"], "activation_level")
    if type(values["connections"]) is list:
        for conn in values["connections"]:
            _unit_numbers(conn, "weight")
    problem = _unit_shape(values)
    if problem is not None:
        raise ValueError(problem)
    return cast(HierarchicalUnit, values)
