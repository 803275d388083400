"""One row through the migration: decode → convert → validate → encode, and its fingerprint.

Pure and per row. ``migrate_row`` is what the worker runs for every source row; ``source_fingerprint``
and ``target_fingerprint`` are what verification sums on each side (``fingerprint``'s contract makes
the two sums equal when nothing was lost).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import jsontext
from .fastpath import migrate_plain
from .fingerprint import fingerprint_neuron, fingerprint_unit
from .flat import SourceTexts, decode_with_texts
from .rows import Failure, HierarchicalUnit
from .units import convert, decode_unit, validate

__all__ = ["migrate_reference", "migrate_row", "source_fingerprint", "target_fingerprint"]

_float_text = float.__repr__  # the shortest text that reads back as the same double


def _encode_with_texts(unit: HierarchicalUnit, texts: SourceTexts) -> tuple[Any, ...]:
    """``units.encode_unit``, but weights, biases and working memory as the source's text where there
    is one. Same keys in the same order; only the spelling of those three values may differ (spaces,
    ``1`` for ``1.0``), never what they read as.
    """
    cs = unit["cognitive_state"]
    ls = unit["learning_state"]
    compact = jsontext.compact
    cognitive = (
        '{"activation_level":'
        + _float_text(cs["activation_level"])
        + ',"attention_focus":'
        + compact(cs["attention_focus"])
        + ',"working_memory":'
        + (compact(cs["working_memory"]) if texts.memory is None else texts.memory)
        + ',"processing_mode":"'
        + cs["processing_mode"]
        + '"}'
    )
    learning = (
        '{"weights":'
        + (compact(ls["weights"]) if texts.weights is None else texts.weights)
        + ',"biases":'
        + (compact(ls["biases"]) if texts.biases is None else texts.biases)
        + ',"learning_rate":'
        + _float_text(ls["learning_rate"])
        + ',"momentum":'
        + _float_text(ls["momentum"])
        + ',"gradient_history":[]}'
    )
    return (
        unit["unit_id"],
        unit["layer"],
        cognitive,
        learning,
        compact(unit["connections"]),
        compact(unit["metadata"]),
    )


def migrate_row(raw: Mapping[str, Any], migrated_at: str) -> tuple[tuple[Any, ...], int] | Failure:
    """``(target row, fingerprint)`` or a Failure: ``fastpath`` for a plainly well-formed row (most of
    them), else the reference path, which gives the same output and names what is wrong."""
    return migrate_plain(raw, migrated_at) or migrate_reference(raw, migrated_at)


def migrate_reference(raw: Mapping[str, Any], migrated_at: str) -> tuple[tuple[Any, ...], int] | Failure:
    """decode → convert → validate → encode, in one call: ``(target row, fingerprint)`` or a Failure.

    The fingerprint is ``fingerprint_neuron`` of the decoded row, the source side of the NoDataLoss
    sum; ``target_fingerprint`` of the row equals it. Never raises on a bad row (like decode).

    Weights, biases and memory are written as the source's own JSON text instead of being printed
    again from floats. That is bit-exact by construction: the text is the one the validated floats
    were read from, it holds only finite numbers (an object, for memory) and it reads the same way
    on the way back (``decode_unit`` turns integers written without a point into the same floats
    ``decode`` did). Every number printed here is finite: decode refused anything else.
    """
    decoded = decode_with_texts(raw)
    if isinstance(decoded, dict):
        return decoded
    neuron, texts = decoded
    unit = convert(neuron, migrated_at)
    failure = validate(neuron, unit)
    if failure is not None:
        return failure
    return _encode_with_texts(unit, texts), fingerprint_neuron(neuron)


def source_fingerprint(raw: Mapping[str, Any]) -> int | None:
    """The fingerprint of a source row, or None when it cannot be decoded."""
    decoded = decode_with_texts(raw)
    if isinstance(decoded, dict):
        return None
    return fingerprint_neuron(decoded[0])


def target_fingerprint(row: Mapping[str, Any]) -> int:
    """The fingerprint of a target row; ValueError, naming the problem, for a row that is not a unit."""
    return fingerprint_unit(decode_unit(row))
