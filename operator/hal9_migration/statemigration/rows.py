"""The shapes of neuron state on both sides of the migration (DESIGN §5), as plain typed dicts.

Rows travel as dicts because that is what the database drivers give and take; these types only name
the keys. Structured fields (lists, objects) are JSON text in both stores, so one corrupted field
fails one row, not the read of a whole batch. Also here, for both sides: what a valid id looks like
(``is_uuid``) and how a Failure is made (``failure``).
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal, TypedDict, cast

# Columns of the flat (source) table `neurons`, in order.
FLAT_COLUMNS = (
    "neuron_id",
    "neuron_type",
    "activation",
    "weights",
    "biases",
    "learning_rate",
    "momentum",
    "connections",
    "memory",
    "context",
    "avg_response_time",
    "connection_count",
    "is_async",
    "created_at",
)
# Flat columns that hold JSON text.
FLAT_JSON_COLUMNS = ("weights", "biases", "connections", "memory", "context")

# Columns of the hierarchical (target) table `hierarchical_units`, in order.
UNIT_COLUMNS = (
    "unit_id",
    "layer",
    "cognitive_state",
    "learning_state",
    "connections",
    "metadata",
)
UNIT_JSON_COLUMNS = ("cognitive_state", "learning_state", "connections", "metadata")

Layer = Literal["L1", "L2", "L3", "L4", "L5"]
ConnectionType = Literal["Forward", "Backward", "Lateral"]


class FlatConnection(TypedDict):
    target: str
    weight: float
    conn_type: str


class FlatNeuron(TypedDict):
    """A source row after its JSON columns are decoded."""

    neuron_id: str
    neuron_type: str
    activation: float
    weights: list[float]
    biases: list[float]
    learning_rate: float
    momentum: float | None
    connections: list[FlatConnection]
    memory: dict[str, Any]
    context: dict[str, Any]
    avg_response_time: float  # milliseconds
    connection_count: int
    is_async: bool
    created_at: str  # ISO 8601, UTC


class CognitiveState(TypedDict):
    activation_level: float
    attention_focus: Any  # context["focus"], or None
    working_memory: dict[str, Any]
    processing_mode: Literal["async", "sync"]


class LearningState(TypedDict):
    weights: list[float]
    biases: list[float]
    learning_rate: float
    momentum: float
    gradient_history: list[list[float]]


class UnitConnection(TypedDict):
    target_id: str
    connection_type: ConnectionType
    weight: float


class UnitMetadata(TypedDict):
    original_id: str
    original_type: str
    created_at: str
    migrated_at: str


class HierarchicalUnit(TypedDict):
    """A target row before its JSON columns are encoded."""

    unit_id: str
    layer: Layer
    cognitive_state: CognitiveState
    learning_state: LearningState
    connections: list[UnitConnection]
    metadata: UnitMetadata


class Failure(TypedDict):
    """Why one source row was not migrated; recorded in the target, never dropped."""

    neuron_id: str
    validator: Literal["decode", "schema", "integrity", "consistency"]
    reason: str


# Canonical 8-4-4-4-12 hex form only: uuid.UUID() also takes braces, "urn:uuid:", no hyphens and even
# underscores, none of which is an id this store should hold. Compiled once, at import.
_UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
is_uuid: Final = _UUID_RE.match  # a match (truthy) for a canonical UUID string, else None

REASON_MAX: Final = 500  # a reason quotes values; a hostile row must not make it huge


def failure(neuron_id: str, validator: str, reason: str) -> Failure:
    """A Failure, its reason cut to REASON_MAX characters."""
    if len(reason) > REASON_MAX:
        reason = reason[: REASON_MAX - 1] + "…"
    return cast(Failure, {"neuron_id": neuron_id, "validator": validator, "reason": reason})
