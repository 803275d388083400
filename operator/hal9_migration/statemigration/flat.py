"""Decoding flat source rows (DESIGN §5): a row of the ``neurons`` table → a FlatNeuron, or why not.

Pure and per row: no store, no I/O. ``decode`` never raises: any input it cannot turn into a
well-formed FlatNeuron becomes a Failure naming the column and what is wrong with it. Invalid JSON is
a ``decode`` failure; anything else wrong (missing column, wrong type, id not a UUID, NaN/inf
anywhere, a lone surrogate) is a ``schema`` failure.

JSON columns are read by ``jsontext``: orjson where its reading provably equals the reference
reading, the reference decoder otherwise (and always for a row that is refused, so the reasons are
the reference's). Speed matters (a million rows of 64 weights and 8 connections): the hot path
avoids per-element Python work where a C-level call does (type sets, ``min``/``max``, ``sum``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, TypeGuard, cast

from . import jsontext
from .rows import FLAT_COLUMNS, Failure, FlatConnection, FlatNeuron, failure, is_uuid

__all__ = ["SourceTexts", "decode", "decode_with_texts", "is_failure"]

_FLAT_SET: Final = frozenset(FLAT_COLUMNS)
_FLOAT_ONLY: Final = frozenset((float,))
_INT_OR_FLOAT: Final = frozenset((int, float))
_CONNECTION_KEYS: Final = frozenset(("target", "weight", "conn_type"))

_TYPE_NAMES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


class Reject(Exception):
    """One row is refused; carries the Failure's validator and reason."""

    def __init__(self, validator: str, reason: str) -> None:
        super().__init__(reason)
        self.validator = validator
        self.reason = reason


class SourceTexts(NamedTuple):
    """The source's JSON text of weights, biases and memory (None where a driver gave them parsed)."""

    weights: str | None
    biases: str | None
    memory: str | None


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _text(value: str, where: str) -> str:
    """A string that can be written as UTF-8 (a lone surrogate from a JSON escape cannot)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Reject("schema", f"{where}: string is not valid Unicode (lone surrogate)") from None
    return value


def _number(value: object, column: str, index: int = -1, field: str = "") -> float:
    """A finite float; an int that a float holds exactly becomes that float; bool is not a number.

    Where it is (``column``, ``column[index]`` or ``column[index]field``) is spelled only for a reason.
    """
    if type(value) is float:
        if value - value == 0.0:  # false for NaN and ±inf
            return value
        raise Reject("schema", f"{_where(column, index, field)}: non-finite number {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except OverflowError:
            raise Reject("schema", f"{_where(column, index, field)}: integer is out of float range") from None
        if as_float != value:
            raise Reject(
                "schema", f"{_where(column, index, field)}: integer {value} has no exact float value"
            )
        return as_float
    if isinstance(value, float):  # a float subclass (numpy.float64 and the like)
        return _number(float(value), column, index, field)
    raise Reject("schema", f"{_where(column, index, field)}: expected a number, got {_type_name(value)}")


def _where(column: str, index: int, field: str) -> str:
    return column if index < 0 else f"{column}[{index}]{field}"


def _numbers(value: object, column: str) -> list[float]:
    """A JSON array of finite numbers, as floats (the reference path: a driver's list, or one the
    reference decoder read). The common case (all floats) stays in C."""
    if type(value) is not list:
        raise Reject("schema", f"{column}: expected an array of numbers, got {_type_name(value)}")
    items: list[Any] = value
    if items and set(map(type, items)) != _FLOAT_ONLY:
        items = _exact_floats(items) or [_number(x, column, i) for i, x in enumerate(items)]
    total = sum(items)
    if total - total != 0.0:  # some element is NaN/±inf, or finite ones overflowed the sum
        for i, x in enumerate(items):
            if x - x != 0.0:
                raise Reject("schema", f"{column}[{i}]: non-finite number {x!r}")
    return items


def _exact_floats(items: list[Any]) -> list[Any] | None:
    """Plain ints and floats → floats, if every int has an exact float (else None)."""
    if set(map(type, items)) - _INT_OR_FLOAT:
        return None
    try:
        floats = [x if type(x) is float else float(x) for x in items]
    except OverflowError:
        return None
    return floats if floats == items else None  # int == float compares exactly


def _connections(value: object) -> list[FlatConnection]:
    if type(value) is not list:
        raise Reject("schema", f"connections: expected an array of objects, got {_type_name(value)}")
    conns: list[Any] = value
    for i, conn in enumerate(value):
        if type(conn) is not dict:
            raise Reject("schema", f"connections[{i}]: expected an object, got {_type_name(conn)}")
        if len(conn) != 3 or conn.keys() != _CONNECTION_KEYS:
            raise Reject(
                "schema",
                f"connections[{i}]: expected exactly the keys conn_type, target, weight; "
                f"got {', '.join(sorted(conn)) or 'none'}",
            )
        target = conn["target"]
        weight = conn["weight"]
        conn_type = conn["conn_type"]
        if type(target) is not str:
            raise Reject("schema", f"connections[{i}].target: expected a string, got {_type_name(target)}")
        if type(conn_type) is not str:
            raise Reject(
                "schema", f"connections[{i}].conn_type: expected a string, got {_type_name(conn_type)}"
            )
        if type(weight) is not float or weight - weight != 0.0:
            # an int weight becomes its float; copied, so a driver's own objects are not touched
            if conns is value:
                conns = list(value)
            conns[i] = {**conn, "weight": _number(weight, "connections", i, ".weight")}
        if not (target.isascii() and conn_type.isascii()):
            _text(target, f"connections[{i}].target")
            _text(conn_type, f"connections[{i}].conn_type")
    return cast("list[FlatConnection]", conns)


def _object(value: object, column: str, text: str | None) -> dict[str, Any]:
    """A JSON object that survives the target's JSON and the fingerprint's UTF-8.

    Read by the reference decoder from ``text`` it already has no NaN/inf (the decoder's hooks);
    what is left is a lone surrogate, which only a ``\\u`` escape or a surrogate in the text itself
    can produce. An object a driver decoded itself gets the full check: one encode.
    """
    if type(value) is not dict:
        raise Reject("schema", f"{column}: expected an object, got {_type_name(value)}")
    obj = cast("dict[str, Any]", value)
    if text is not None and "\\u" not in text:
        if not text.isascii():
            _text(text, column)
        return obj
    try:
        jsontext.compact_finite(obj).encode("utf-8")
    except UnicodeEncodeError:
        raise Reject("schema", f"{column}: string is not valid Unicode (lone surrogate)") from None
    except ValueError:
        raise Reject("schema", f"{column}: non-finite number") from None
    return obj


def _column_text(raw: Mapping[str, Any], column: str) -> tuple[Any, str | None]:
    """A JSON column as text ``(None, text)``, or as a driver's parsed value ``(value, None)``."""
    value = raw[column]
    if type(value) is str:
        return None, value
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return None, bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Reject("decode", f"{column}: invalid JSON: not UTF-8 ({exc.reason})") from None
    if isinstance(value, list | dict):  # a driver that decodes json/jsonb itself
        return value, None
    if isinstance(value, str):
        return None, str(value)
    raise Reject("schema", f"{column}: expected JSON text, got {_type_name(value)}")


def _reference(text: str, column: str, decoder: json.JSONDecoder) -> Any:
    """The reference reading of a JSON column; its refusals become the row's Failure."""
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise Reject("decode", f"{column}: invalid JSON: {exc.msg} at char {exc.pos}") from None
    except jsontext.NonFinite as exc:
        raise Reject("schema", f"{column}: non-finite number {exc}") from None
    except jsontext.DuplicateKey as exc:
        raise Reject("decode", f"{column}: invalid JSON: duplicate key {str(exc)[:80]!r}") from None
    except RecursionError:
        raise Reject("decode", f"{column}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise Reject("decode", f"{column}: invalid JSON: {exc}") from None


def _number_array(raw: Mapping[str, Any], column: str) -> tuple[list[float], str | None]:
    value = raw[column]
    if type(value) is str:
        items = jsontext.fast_floats(value)
        if items is not None:
            return items, value
    parsed, text = _column_text(raw, column)
    if text is None:
        return _numbers(parsed, column), None
    return _numbers(_reference(text, column, jsontext.REFERENCE_ARRAY), column), text


def _connection_array(raw: Mapping[str, Any]) -> list[FlatConnection]:
    value = raw["connections"]
    if type(value) is str:
        conns = jsontext.fast_connections(value)
        if conns is not None:
            return cast("list[FlatConnection]", conns)
    # Not plainly well-formed (or not text, or it may hold an integer beyond 64 bits): the
    # reference reading and the full check decide, and name what is wrong.
    parsed, text = _column_text(raw, "connections")
    if text is None:
        return _connections(parsed)
    return _connections(_reference(text, "connections", jsontext.REFERENCE_CONNECTIONS))


def _json_object(raw: Mapping[str, Any], column: str) -> tuple[dict[str, Any], str | None]:
    value = raw[column]
    if type(value) is str:
        fast = jsontext.fast_object(value)
        if fast is not None:
            return fast[0], value
    parsed, text = _column_text(raw, column)
    if text is None:
        return _object(parsed, column, None), None
    return _object(_reference(text, column, jsontext.REFERENCE_OBJECT), column, text), text


def _neuron_id(value: object) -> str:
    if type(value) is str:
        if is_uuid(value):
            return value
        raise Reject("schema", f"neuron_id: {value[:64]!r} is not a UUID")
    if isinstance(value, uuid.UUID):  # a driver's uuid column
        return str(value)
    raise Reject("schema", f"neuron_id: expected a UUID string, got {_type_name(value)}")


def _created_at(value: object) -> str:
    if type(value) is str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise Reject("schema", f"created_at: {value[:64]!r} is not an ISO 8601 timestamp") from None
        return _text(value, "created_at")
    if isinstance(value, datetime):  # a driver's timestamp; naive ones are UTC by DESIGN §5
        stamp = value.astimezone(UTC) if value.tzinfo else value
        return stamp.replace(tzinfo=None).isoformat() + "Z"
    raise Reject("schema", f"created_at: expected an ISO 8601 string, got {_type_name(value)}")


def _is_async(value: object) -> bool:
    if value is True or value is False:
        return value
    if type(value) is int and value in (0, 1):  # SQLite has no boolean
        return value == 1
    raise Reject("schema", f"is_async: expected a boolean or 0/1, got {value!r}"[:200])


def safe_id(raw: object) -> str:
    """The row's neuron_id as far as it can be told, for a Failure; never raises."""
    try:
        value = cast("Mapping[str, Any]", raw).get("neuron_id")
        if value is None:
            return ""
        text = value if type(value) is str else str(value)
        return text[:100]
    except Exception:
        return ""


def _decode(raw: Mapping[str, Any]) -> tuple[FlatNeuron, SourceTexts]:
    try:
        complete = raw.keys() >= _FLAT_SET
    except Exception:  # not a Mapping: the loop below says what is missing
        complete = False
    if not complete:
        for column in FLAT_COLUMNS:
            if column not in raw:
                raise Reject("schema", f"{column}: column missing")
    neuron_id = _neuron_id(raw["neuron_id"])
    neuron_type = raw["neuron_type"]
    if type(neuron_type) is not str:
        raise Reject("schema", f"neuron_type: expected a string, got {_type_name(neuron_type)}")
    if not neuron_type.isascii():
        _text(neuron_type, "neuron_type")
    activation = _number(raw["activation"], "activation")
    weights, weights_text = _number_array(raw, "weights")
    biases, biases_text = _number_array(raw, "biases")
    learning_rate = _number(raw["learning_rate"], "learning_rate")
    momentum = raw["momentum"]
    connections = _connection_array(raw)
    memory, memory_text = _json_object(raw, "memory")
    context, _ = _json_object(raw, "context")
    connection_count = raw["connection_count"]
    if type(connection_count) is not int:
        if not isinstance(connection_count, int) or isinstance(connection_count, bool):
            raise Reject(
                "schema", f"connection_count: expected an integer, got {_type_name(connection_count)}"
            )
        connection_count = int(connection_count)
    neuron: FlatNeuron = {
        "neuron_id": neuron_id,
        "neuron_type": neuron_type,
        "activation": activation,
        "weights": weights,
        "biases": biases,
        "learning_rate": learning_rate,
        "momentum": None if momentum is None else _number(momentum, "momentum"),
        "connections": connections,
        "memory": memory,
        "context": context,
        "avg_response_time": _number(raw["avg_response_time"], "avg_response_time"),
        "connection_count": connection_count,
        "is_async": _is_async(raw["is_async"]),
        "created_at": _created_at(raw["created_at"]),
    }
    return neuron, SourceTexts(weights_text, biases_text, memory_text)


def decode_with_texts(raw: Mapping[str, Any]) -> tuple[FlatNeuron, SourceTexts] | Failure:
    """``decode``, and the source's text of weights, biases and memory (see ``pipeline.migrate_row``)."""
    try:
        return _decode(raw)
    except Reject as exc:
        return failure(safe_id(raw), exc.validator, exc.reason)
    except Exception as exc:  # a hostile Mapping, a driver type nobody foresaw: still never raise
        return failure(safe_id(raw), "decode", f"unreadable row: {type(exc).__name__}: {exc}"[:300])


def decode(raw: Mapping[str, Any]) -> FlatNeuron | Failure:
    """One source row (keys FLAT_COLUMNS, JSON columns as text) → a FlatNeuron, or why not.

    Never raises. Reasons start with the column.
    """
    result = decode_with_texts(raw)
    return result if isinstance(result, dict) else result[0]


def is_failure(result: FlatNeuron | Failure) -> TypeGuard[Failure]:
    """Whether what decode gave is a Failure (narrows the type for mypy)."""
    return "validator" in result
