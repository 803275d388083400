"""The common row in one pass: a plainly well-formed source row → its target row and fingerprint.

Pure and per row. Nearly every row of a real table is plain: a canonical UUID, ASCII names, finite
floats, JSON columns as text that orjson reads exactly as the reference reading does (``jsontext``).
For such a row ``migrate_plain`` gives what ``pipeline.migrate_reference`` (decode → convert →
validate → encode, and the fingerprint) gives, byte for byte, without building the neuron and unit
dictionaries in between: about half the time a row. For any other row it returns None and the
caller takes the reference path, which decides and names what is wrong. Equality with the reference
path is tested over the seeded corpus and generated rows (tests/unit/statemigration/test_fastpath.py).

The validators of DESIGN §5 hold here by construction, as they do for what ``units.convert``
builds (there they are checked on the unit, a guard against a convert that drifts): the unit id is
the checked UUID; the layer is the rule's; weights and biases are written as the very text their
checked floats were read from, the other numbers as ``repr`` (which reads back as the same double);
every connection is written in order from the source's target, mapped type and weight. The
independent check of what was written is verification, which reads every target row back, with the
reference reading, and compares its fingerprint with the source's before the phase may pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import orjson

from . import jsontext
from .fingerprint import digest
from .rows import is_uuid
from .units import DEFAULT_MOMENTUM, assign_layer, connection_types

__all__ = ["migrate_plain"]

_loads: Final = orjson.loads
_dumps: Final = orjson.dumps
_SORTED: Final = orjson.OPT_SORT_KEYS
_float_text: Final = float.__repr__
_fromisoformat: Final = datetime.fromisoformat


def _finite(value: object) -> bool:
    return type(value) is float and value - value == 0.0  # false for NaN and ±inf


def migrate_plain(raw: Mapping[str, Any], migrated_at: str) -> tuple[tuple[Any, ...], int] | None:
    """``(target row, fingerprint)`` of a plainly well-formed row, as the reference path gives them;
    None for any other row (never a Failure, never an exception for a dict row)."""
    try:
        neuron_id = raw["neuron_id"]
        neuron_type = raw["neuron_type"]
        activation = raw["activation"]
        learning_rate = raw["learning_rate"]
        momentum = raw["momentum"]
        avg_response_time = raw["avg_response_time"]
        connection_count = raw["connection_count"]
        is_async = raw["is_async"]
        created_at = raw["created_at"]
        weights_text = raw["weights"]
        biases_text = raw["biases"]
        connections_text = raw["connections"]
        memory_text = raw["memory"]
        context_text = raw["context"]
    except KeyError:
        return None
    if momentum is None:
        momentum = DEFAULT_MOMENTUM
    # SQLite has no boolean: is_async comes as 0 or 1 from it
    if not (
        type(neuron_id) is str
        and type(neuron_type) is str
        and type(created_at) is str
        and _finite(activation)
        and _finite(learning_rate)
        and _finite(momentum)
        and _finite(avg_response_time)
        and type(connection_count) is int
        and (is_async is True or is_async is False or (type(is_async) is int and 0 <= is_async <= 1))
        and type(weights_text) is str
        and type(biases_text) is str
        and type(connections_text) is str
        and type(memory_text) is str
        and type(context_text) is str
        and neuron_type.isascii()
        and created_at.isascii()
        and is_uuid(neuron_id)
    ):
        return None
    try:
        _fromisoformat(created_at)
    except ValueError:
        return None
    weights = jsontext.read_floats(weights_text)
    biases = jsontext.read_floats(biases_text)
    conns = jsontext.read_connections(connections_text)
    memory = jsontext.fast_object(memory_text)
    context = jsontext.fast_object(context_text)
    if weights is None or biases is None or conns is None or memory is None or context is None:
        return None
    targets = [c["target"] for c in conns]
    conn_weights = [c["weight"] for c in conns]
    floats = jsontext.pack_floats([activation, learning_rate, momentum, *weights, *biases, *conn_weights])
    if not jsontext.narrow_packed(floats) and not (
        jsontext.kept_long_digits(weights_text, _dumps(weights))
        and jsontext.kept_long_digits(biases_text, _dumps(biases))
        and jsontext.kept_long_digits(connections_text, _dumps(conns))
    ):
        return None  # an integer beyond 64 bits that orjson may have rounded: the reference reads it

    kinds = connection_types([c["conn_type"] for c in conns])
    layer = assign_layer(neuron_type, avg_response_time, connection_count)
    focus = context[0].get("focus")
    connections_out = _dumps(
        [
            {"target_id": target, "connection_type": kind, "weight": weight}
            for target, kind, weight in zip(targets, kinds, conn_weights, strict=True)
        ]
    )
    mode = "async" if is_async else "sync"
    metadata = _dumps(
        {
            "original_id": neuron_id,
            "original_type": neuron_type,
            "created_at": created_at,
            "migrated_at": migrated_at,
        }
    )
    row = (
        neuron_id,
        layer,
        f'{{"activation_level":{_float_text(activation)},"attention_focus":{_dumps(focus).decode()},'
        f'"working_memory":{memory_text},"processing_mode":"{mode}"}}',
        f'{{"weights":{weights_text},"biases":{biases_text},"learning_rate":{_float_text(learning_rate)},'
        f'"momentum":{_float_text(momentum)},"gradient_history":[]}}',
        connections_out.decode(),
        metadata.decode(),
    )
    # fingerprint.fingerprint_neuron's parts: its canonical text array, spliced from pieces orjson
    # printed (its compact output is the same printed whole or in parts), and its floats.
    head = _dumps([neuron_id, neuron_id, neuron_type, created_at, layer, targets, kinds])
    text = b"".join((head[:-1], b",", memory[1], b",", _dumps(focus, option=_SORTED), b"]"))
    return row, digest(text, floats, bool(is_async), (len(weights), len(biases), len(conns)))
