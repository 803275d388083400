"""Fingerprints for NoDataLoss: a 64-bit digest of what the migration must preserve of a row.

Pure. ``fingerprint_unit(convert(n, t)) == fingerprint_neuron(n)`` for every decodable ``n``; a
change to any preserved content changes the fingerprint (up to 64-bit collisions). ``combine`` sums
them into an order-independent checksum, so source and target can be compared in any order, shard
by shard.

The digest is BLAKE2b (8 bytes) over a header fixing the boundaries between the parts, the canonical
JSON (sorted keys) of the strings and JSON values, and the floats as little-endian IEEE 754 bytes.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Final

from . import jsontext
from .rows import FlatNeuron, HierarchicalUnit
from .units import DEFAULT_MOMENTUM, assign_layer, connection_types

__all__ = ["combine", "digest", "fingerprint_neuron", "fingerprint_unit"]

_MASK64: Final = (1 << 64) - 1
_HEAD: Final = struct.Struct("<QBIII")
_blake2b: Final = hashlib.blake2b
_PACKERS: dict[int, struct.Struct] = {}


def _float_bytes(floats: tuple[float, ...]) -> bytes:
    """Little-endian IEEE 754 bytes of the floats (one C call; the Struct per count is kept)."""
    packer = _PACKERS.get(len(floats))
    if packer is None:
        packer = struct.Struct(f"<{len(floats)}d")
        if len(_PACKERS) < 1024:
            _PACKERS[len(floats)] = packer
    return packer.pack(*floats)


def digest(text: bytes, floats: bytes, is_async: bool, counts: tuple[int, int, int]) -> int:
    """The fingerprint of a row's parts: ``text`` the canonical JSON of its strings and JSON values,
    ``floats`` its floats as little-endian IEEE 754 bytes, ``counts`` (weights, biases, connections).

    A header fixes the boundaries between the parts. Public for ``fastpath``, which has the parts
    already at hand.
    """
    hasher = _blake2b(_HEAD.pack(len(text), is_async, *counts), digest_size=8)
    hasher.update(text)
    hasher.update(floats)
    return int.from_bytes(hasher.digest(), "little")


def _digest(
    text_part: list[Any], floats: tuple[float, ...], is_async: bool, counts: tuple[int, int, int]
) -> int:
    # Strings and JSON values go through one canonical JSON array (unambiguous, sorted keys).
    return digest(jsontext.canonical(text_part), _float_bytes(floats), is_async, counts)


def fingerprint_neuron(neuron: FlatNeuron) -> int:
    """64-bit digest of what the migration must preserve of a neuron (see the module doc)."""
    conns = neuron["connections"]
    momentum = neuron["momentum"]
    neuron_id = neuron["neuron_id"]
    weights = neuron["weights"]
    biases = neuron["biases"]
    floats = (
        neuron["activation"],
        neuron["learning_rate"],
        DEFAULT_MOMENTUM if momentum is None else momentum,
        *weights,
        *biases,
        *[c["weight"] for c in conns],
    )
    text_part = [
        neuron_id,
        neuron_id,
        neuron["neuron_type"],
        neuron["created_at"],
        assign_layer(neuron["neuron_type"], neuron["avg_response_time"], neuron["connection_count"]),
        [c["target"] for c in conns],
        connection_types([c["conn_type"] for c in conns]),
        neuron["memory"],
        neuron["context"].get("focus"),
    ]
    return _digest(text_part, floats, neuron["is_async"], (len(weights), len(biases), len(conns)))


def fingerprint_unit(unit: HierarchicalUnit) -> int:
    """The same digest, from the target side: equal to fingerprint_neuron of the neuron it came from."""
    cs = unit["cognitive_state"]
    ls = unit["learning_state"]
    md = unit["metadata"]
    conns = unit["connections"]
    weights = ls["weights"]
    biases = ls["biases"]
    floats = (
        cs["activation_level"],
        ls["learning_rate"],
        ls["momentum"],
        *weights,
        *biases,
        *[c["weight"] for c in conns],
    )
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
    return _digest(
        text_part, floats, cs["processing_mode"] == "async", (len(weights), len(biases), len(conns))
    )


def combine(a: int, b: int) -> int:
    """Order-independent aggregate of fingerprints: a sum mod 2**64 (unlike XOR, duplicates show)."""
    return (a + b) & _MASK64
