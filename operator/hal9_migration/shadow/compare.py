"""HAL9's output-parity rule, applied to one pair of answers (pure: no I/O, no clock).

DESIGN §2: in Shadow both systems answer every request and the phase may be left only when output
parity >= 0.99. Parity is ``1 - sum(scores) / pairs compared``, where a pair scores

- 1.0 ``status``: the status codes differ (checked first: a 500 against a 200 is a failure whatever
  the bodies say);
- 1.0 ``output``: the answers differ once the ignored fields (timestamps, request ids) and the
  confidence are taken out; for bodies that are not both JSON, when the bytes differ;
- 0.5 ``confidence``: the same output, but the confidences differ by more than the tolerance;
- 1.0 ``error`` / ``timeout``: hierarchical did not answer properly (connection refused or reset,
  a malformed response) or not in time: a shadow that cannot answer is not at parity;
- 0.0: identical.

Field paths are dotted (``meta.requestId``); a segment that meets a list applies to every element
(``items.id`` ignores the ``id`` of each item). A path that is not there is fine: answers differ in
shape, and an ignore list must not fail on the ones that lack a field.

JSON is compared by value with JSON's types: ``1`` equals ``1.0`` (one JSON number), but ``true`` does
not equal ``1`` (Python's ``True == 1`` would hide that divergence).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FieldPath = tuple[str, ...]


class DivergenceKind(enum.StrEnum):
    """Why a pair diverged; the ``kind`` label of ``hal9_shadow_divergences_total``."""

    OUTPUT = "output"
    CONFIDENCE = "confidence"
    STATUS = "status"
    ERROR = "error"
    TIMEOUT = "timeout"


SCORES = {
    DivergenceKind.OUTPUT: 1.0,
    DivergenceKind.CONFIDENCE: 0.5,
    DivergenceKind.STATUS: 1.0,
    DivergenceKind.ERROR: 1.0,
    DivergenceKind.TIMEOUT: 1.0,
}


@dataclass(frozen=True)
class Verdict:
    """The comparison of one pair: ``kind`` is None when the answers are at parity (score 0)."""

    kind: DivergenceKind | None
    score: float

    @classmethod
    def diverged(cls, kind: DivergenceKind) -> Verdict:
        return cls(kind, SCORES[kind])


IDENTICAL = Verdict(None, 0.0)


def parse_path(text: str) -> FieldPath:
    """``"meta.requestId"`` -> ``("meta", "requestId")``; refuses empty segments (``a..b``, ``.a``)."""
    segments = tuple(text.split("."))
    if not text or any(not segment for segment in segments):
        raise ValueError(f"{text!r} is not a dotted field path (like meta.requestId)")
    return segments


@dataclass(frozen=True)
class CompareRules:
    """How answers are compared: the command line's --ignore-field, --confidence-field and
    --confidence-tolerance."""

    ignored_fields: tuple[FieldPath, ...] = ()
    confidence_field: FieldPath = ("confidence",)
    confidence_tolerance: float = 0.1


def compare_answers(
    rules: CompareRules, primary_status: int, primary_body: bytes, shadow_status: int, shadow_body: bytes
) -> Verdict:
    """HAL9's rule on flat's (primary) and hierarchical's (shadow) answers to the same request."""
    if primary_status != shadow_status:
        return Verdict.diverged(DivergenceKind.STATUS)
    primary = _parse_json(primary_body)
    shadow = _parse_json(shadow_body)
    if primary is _NOT_JSON or shadow is _NOT_JSON:
        return IDENTICAL if primary_body == shadow_body else Verdict.diverged(DivergenceKind.OUTPUT)
    for path in rules.ignored_fields:
        primary = _without(primary, path)
        shadow = _without(shadow, path)
    primary_confidence = _number_at(primary, rules.confidence_field)
    shadow_confidence = _number_at(shadow, rules.confidence_field)
    if primary_confidence is not None and shadow_confidence is not None:
        # Both answers carry a confidence: it is judged by the tolerance, not by equality. When only
        # one does (or it is not a number), it stays in the output and the output comparison sees it.
        primary = _without(primary, rules.confidence_field)
        shadow = _without(shadow, rules.confidence_field)
    if not same_json(primary, shadow):
        return Verdict.diverged(DivergenceKind.OUTPUT)
    if (
        primary_confidence is not None
        and shadow_confidence is not None
        and abs(primary_confidence - shadow_confidence) > rules.confidence_tolerance
    ):
        return Verdict.diverged(DivergenceKind.CONFIDENCE)
    return IDENTICAL


def failure_verdict(timed_out: bool) -> Verdict:
    """The verdict when hierarchical gave no usable answer."""
    return Verdict.diverged(DivergenceKind.TIMEOUT if timed_out else DivergenceKind.ERROR)


_NOT_JSON: Any = object()


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _NOT_JSON


def _without(value: Any, path: Sequence[str]) -> Any:
    """``value`` with the field at ``path`` removed, in place (the value is this module's own parse)."""
    if isinstance(value, list):
        for item in value:
            _without(item, path)
    elif isinstance(value, dict):
        if len(path) == 1:
            value.pop(path[0], None)
        elif path[0] in value:
            _without(value[path[0]], path[1:])
    return value


def _number_at(value: Any, path: Sequence[str]) -> float | None:
    """The finite number at ``path`` (through objects only: a confidence inside a list is ambiguous)."""
    for segment in path:
        if not isinstance(value, dict) or segment not in value:
            return None
        value = value[segment]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def same_json(left: Any, right: Any) -> bool:
    """Equality of two parsed JSON values with JSON's types (booleans are not numbers)."""
    if isinstance(left, dict):
        return (
            isinstance(right, dict)
            and left.keys() == right.keys()
            and all(same_json(value, right[key]) for key, value in left.items())
        )
    if isinstance(left, list):
        return (
            isinstance(right, list)
            and len(left) == len(right)
            and all(same_json(a, b) for a, b in zip(left, right, strict=True))
        )
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float):
        return isinstance(right, int | float) and left == right
    return type(left) is type(right) and bool(left == right)
