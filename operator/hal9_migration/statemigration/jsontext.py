"""JSON text in and out of the state migration: fast, and exactly what the reference reading gives.

Parsing and printing the JSON of 80+ floats a row was most of the worker's time with the standard
library's ``json``. orjson does both in native code, about ten times faster: its float reading is
correctly rounded and its printing is the shortest text that reads back to the same double, so
weights survive bit for bit (-0.0 and subnormals included), at a constant cost per float.
(msgspec, measured too, takes 9-21 µs per float near the ends of the double range, such as
subnormals and ±1.8e308, against orjson's 50 ns: a row of such weights would cost milliseconds.)

orjson is an accelerator here, not the judge. The *reference reading* is the standard library's
decoder with strict hooks (``REFERENCE_*``): it decides what a text means and, when a row is refused,
why. A fast reading is used only where it provably equals the reference one; otherwise the caller
reads the text again with the reference decoder. orjson differs from the reference in four ways, all
caught by the ``fast_*`` functions below (they return None, never raise):

- it refuses NaN/Infinity literals, numbers beyond the double range and lone surrogates, which the
  reference reads (and the callers then refuse, naming the problem): a refusal means "ask the
  reference";
- it keeps the last of duplicate keys silently, where the reference refuses the text. A text
  without ``\\u`` escapes has no more object keys than ``:`` characters, and every ``:`` in it is a
  key's or a string's, so when the fast reading, printed again, holds as many ``:`` as the text
  (or, for connections, as many as 3 keys an object), no key was dropped;
- it turns integers beyond 64 bits into floats, losing digits, where the reference keeps the exact
  integer (and refuses it where a float is meant, or keeps it in memory/context). Such an integer
  is written with at least 19 digits in a row, and a float prints with at most 17: a fast reading
  is kept only if, printed again, it still has every 19-digit run of the text (``kept_long_digits``;
  arrays of floats all below 2**49 skip that check: no such integer became one of them);
- it reads nesting up to 1024 levels deep, the reference only to about 1000: no source column
  nested deeper than 254 levels is taken from orjson (it cannot print it again to check it), so
  what the reference refuses stays refused.

Printing: ``compact`` and ``canonical`` (sorted keys, for fingerprints) print with orjson; a value
it cannot print (an integer beyond 64 bits, nesting beyond 254 levels) is printed by the standard
library instead, the same way every time for the same value. orjson prints NaN and infinity as
``null``; nothing non-finite reaches these printers (decoding refuses it) and ``compact_finite``
refuses it for callers that cannot know.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, Final

import orjson

__all__ = [
    "REFERENCE_ARRAY",
    "REFERENCE_CONNECTIONS",
    "REFERENCE_OBJECT",
    "REFERENCE_UNIT",
    "DuplicateKey",
    "NonFinite",
    "canonical",
    "compact",
    "compact_finite",
    "fast_connections",
    "fast_floats",
    "fast_object",
    "fast_unit_json",
    "has_long_digits",
    "kept_long_digits",
    "narrow",
    "narrow_packed",
    "pack_floats",
    "read_connections",
    "read_floats",
]


class NonFinite(Exception):
    """The text holds NaN, Infinity, -Infinity or a number beyond the double range."""


class DuplicateKey(Exception):
    """A JSON object repeats a key; the reading would silently keep only the last value."""


def _reject_constant(token: str) -> Any:
    raise NonFinite(token)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


def _finite_float(token: str) -> float:
    value = float(token)
    if value - value != 0.0:  # a literal too large for a float, e.g. 1e999
        raise NonFinite(token)
    return value


# The reference readings. Arrays of numbers need no object hook (their callers name the index of a
# non-finite element); connections need the duplicate-key check; memory and context also get a
# finiteness check per float literal (they are walked nowhere else); target columns refuse
# non-finite numbers anywhere (a target row holding one is not a unit: verification says so).
REFERENCE_ARRAY: Final = json.JSONDecoder(parse_constant=_reject_constant)
REFERENCE_CONNECTIONS: Final = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_unique_pairs
)
REFERENCE_OBJECT: Final = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_unique_pairs, parse_float=_finite_float
)
REFERENCE_UNIT: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)

_loads: Final = orjson.loads
_dumps: Final = orjson.dumps
_SORTED: Final = orjson.OPT_SORT_KEYS
# Digits to "0", every other byte to ".": a run of 19 digits (how any integer beyond 64 bits is
# written) becomes a run of 19 "0"s, which a substring search finds. Ten times faster than a regex
# (which retries at every digit of every 17-digit float).
_DIGIT_MAP: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_RUN: Final = b"0" * 19
# The top byte of a little-endian double holds the sign and the exponent's 7 high bits: at least
# 0x43 (sign aside) means |x| >= 2**49. Such bytes become "!", all others ".".
_WIDE_MAP: Final = bytes(0x21 if b & 0x7F >= 0x43 else 0x2E for b in range(256))
_PACKERS: dict[int, struct.Struct] = {}
_FLOAT_ONLY: Final = frozenset((float,))
_INT_OR_FLOAT: Final = frozenset((int, float))
_DICT_ONLY: Final = frozenset((dict,))
_CONNECTION_SHAPE: Final = frozenset(((str, float, str, 3),))
_CONNECTION_SHAPES_WITH_INT: Final = frozenset(((str, float, str, 3), (str, int, str, 3)))


def has_long_digits(text: str) -> bool:
    """Whether ``text`` has 19 digits in a row (an integer orjson may not read exactly)."""
    return _LONG_RUN in text.encode("utf-8", "surrogatepass").translate(_DIGIT_MAP)


def pack_floats(floats: list[float] | tuple[float, ...]) -> bytes:
    """Little-endian IEEE 754 bytes of the floats, in one C call (a Struct per count is kept)."""
    packer = _PACKERS.get(len(floats))
    if packer is None:
        packer = struct.Struct(f"<{len(floats)}d")
        if len(_PACKERS) < 4096:
            _PACKERS[len(floats)] = packer
    return packer.pack(*floats)


def narrow(floats: list[float]) -> bool:
    """Whether every float is below 2**49 in magnitude (so none is a long integer orjson rounded)."""
    return narrow_packed(pack_floats(floats))


def narrow_packed(packed: bytes) -> bool:
    """``narrow`` of floats already packed by ``pack_floats``."""
    return b"!" not in packed[7::8].translate(_WIDE_MAP)


def fast_floats(text: str) -> list[float] | None:
    """orjson's reading of a JSON array of numbers, as floats, where it is the reference's; else None.

    None also for anything but plain numbers (the reference reading and the caller's checks name the
    problem): an int becomes its float only when the float holds it exactly; a float of 2**49 or
    more is trusted only if every 19-digit run of the text is still there when the reading is printed
    again. Arrays need no duplicate-key check: their reference reading makes none either.
    """
    items = read_floats(text)
    if items is None or not items or narrow(items) or kept_long_digits(text, _dumps(items)):
        return items
    return None


def read_floats(text: str) -> list[float] | None:
    """``fast_floats`` without its last check: the caller must still make sure that no float of 2**49
    or more was an integer orjson rounded (``narrow``, else ``kept_long_digits``)."""
    try:
        parsed = _loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(parsed) is not list:
        return None
    items: list[float] = parsed
    if not items:
        return items
    types = set(map(type, items))
    if types != _FLOAT_ONLY:
        if types - _INT_OR_FLOAT:  # bool (an int subclass) included
            return None
        try:
            floats = [x if type(x) is float else float(x) for x in items]
        except OverflowError:
            return None
        if floats != items:  # int == float compares exactly
            return None
        items = floats
    return items


def fast_connections(text: str) -> list[dict[str, Any]] | None:
    """orjson's reading of the connections column where it is the reference's and well-formed:
    objects of exactly the keys target (string), weight (number), conn_type (string), the weights as
    floats (an integer only where a float holds it exactly). Else None.
    """
    conns = read_connections(text)
    if not conns or narrow([c["weight"] for c in conns]) or kept_long_digits(text, _dumps(conns)):
        return conns
    return None


def read_connections(text: str) -> list[dict[str, Any]] | None:
    """``fast_connections`` without its last check (as ``read_floats``, for the weights).

    No key was dropped: the text has no more keys than ``:``, and there are 3 an object. Strings
    orjson reads are valid Unicode (it refuses lone surrogates).
    """
    try:
        conns = _loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(conns) is not list:
        return None
    if not conns:
        return conns
    if text.count(":") != 3 * len(conns) or set(map(type, conns)) != _DICT_ONLY:
        return None
    try:
        shapes = {(type(c["target"]), type(c["weight"]), type(c["conn_type"]), len(c)) for c in conns}
    except KeyError:
        return None
    if shapes == _CONNECTION_SHAPE:
        return conns
    if shapes - _CONNECTION_SHAPES_WITH_INT:
        return None
    # Some weights written as integers: each becomes its float, when the float holds it exactly.
    exact = []
    for conn in conns:
        weight = conn["weight"]
        if type(weight) is int:
            as_float = float(weight)  # orjson's integers fit 64 bits: no OverflowError
            if as_float != weight:
                return None
            conn = {**conn, "weight": as_float}
        exact.append(conn)
    return exact


def fast_object(text: str) -> tuple[dict[str, Any], bytes] | None:
    """orjson's reading of a JSON object and its canonical text, where it is the reference's; else None.

    The canonical text (``canonical`` of the object) comes for free: it is how duplicate keys and
    long integers read as floats are found (see the module doc).
    """
    if "\\u" in text:
        return None
    try:
        obj = _loads(text)
        if type(obj) is not dict:
            return None
        printed = _dumps(obj, option=_SORTED)
    except (orjson.JSONDecodeError, TypeError):
        return None
    if printed.count(b":") != text.count(":") or not kept_long_digits(text, printed):
        return None
    return obj, printed


def kept_long_digits(text: str, printed: bytes) -> bool:
    """Whether orjson's reading of ``text``, ``printed`` again, has every 19-digit run of the text.

    An integer orjson turned into a float prints with at most 17 digits in a row, so its run is
    missing; every other run (an exact integer, digits in a string) prints as it was written. A
    ``\\u`` escape could spell digits that stand in for a missing run: then no run is allowed.
    """
    data = text.encode("utf-8", "surrogatepass")
    mapped = data.translate(_DIGIT_MAP)
    if _LONG_RUN not in mapped:
        return True
    if "\\u" in text:
        return False
    return sorted(_long_runs(data, mapped)) == sorted(_long_runs(printed, printed.translate(_DIGIT_MAP)))


def _long_runs(data: bytes, mapped: bytes) -> list[bytes]:
    """The runs of 19 digits or more in ``data`` (``mapped`` is its digit map): a few finds, no regex
    (which would retry at every digit of every shorter run)."""
    runs = []
    start = mapped.find(_LONG_RUN)
    while start >= 0:
        end = mapped.find(b".", start)
        end = len(mapped) if end < 0 else end
        runs.append(data[start:end])
        start = mapped.find(_LONG_RUN, end)
    return runs


def fast_unit_json(text: str) -> Any | None:
    """orjson's reading of a target JSON column. Its reference keeps duplicate keys' last values too.

    Integers beyond 64 bits are left to the caller: where they matter (numbers of the unit), it
    checks the range or ``has_long_digits``.
    """
    try:
        return _loads(text)
    except orjson.JSONDecodeError:
        return None


def _no_default(value: object) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# The standard library's printers, for what orjson cannot print; never NaN (not JSON).
_STD_COMPACT: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_no_default
).encode
_STD_CANONICAL: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True, default=_no_default
).encode


def compact(value: Any) -> str:
    """Compact JSON text, UTF-8 as is. For values known to hold no NaN or infinity."""
    try:
        return _dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits, nesting beyond 254 levels
        return _STD_COMPACT(value)


def compact_finite(value: Any) -> str:
    """``compact``, but ValueError for NaN or infinity anywhere in ``value`` (orjson prints null)."""
    text = compact(value)
    if "null" in text:  # where orjson printed NaN or infinity, if anywhere
        _check_finite(value)
    return text


def _check_finite(value: Any) -> None:
    if type(value) is float or isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not JSON")
    elif isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_finite(item)


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys, as UTF-8: equal values give equal bytes. Finite values only."""
    try:
        return _dumps(value, option=_SORTED)
    except TypeError:
        return _STD_CANONICAL(value).encode("utf-8")
