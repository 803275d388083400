"""The shapes of neuron state on both sides of the migration (DESIGN §5), as plain typed dicts.

Rows travel as dicts because that is what the database drivers give and take; these types only name
the keys. Structured fields (lists, objects) are JSON text in both stores, so one corrupted field
fails one row, not the read of a whole batch.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

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
