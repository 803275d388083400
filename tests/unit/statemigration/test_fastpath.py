"""The fast path writes exactly what the reference path writes, or leaves the row to it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from hal9_migration.statemigration import pipeline, seed
from hal9_migration.statemigration.fastpath import migrate_plain
from hal9_migration.statemigration.rows import FLAT_COLUMNS, FlatNeuron
from tests.unit.statemigration.conftest import MIGRATED_AT, flat_neurons, garbled_rows, make_neuron, to_raw

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same_as_reference(raw: dict[str, Any]) -> bool:
    """The fast path's answer is None or the reference path's; whether the fast path took the row."""
    fast = migrate_plain(raw, MIGRATED_AT)
    if fast is None:
        return False
    assert fast == pipeline.migrate_reference(raw, MIGRATED_AT)
    return True


def test_the_seeded_corpus_takes_the_fast_path_and_writes_the_same() -> None:
    rows = [dict(zip(FLAT_COLUMNS, row, strict=True)) for row in seed.generate(3000, seed=11)]
    taken = sum(assert_same_as_reference(raw) for raw in rows)
    # The corpus holds edge cases on purpose (long integers in memory, odd connection types, wide
    # floats); the rows the fast path leaves to the reference must stay few, or it is not fast.
    assert taken >= 0.9 * len(rows)


@PROPERTY
@given(neuron=flat_neurons)
def test_any_valid_row_migrates_the_same_on_both_paths(neuron: FlatNeuron) -> None:
    assert_same_as_reference(to_raw(neuron))


@PROPERTY
@given(raw=garbled_rows())
def test_garbage_in_any_column_is_left_to_the_reference_or_migrates_the_same(raw: dict[str, Any]) -> None:
    assert_same_as_reference(raw)


@pytest.mark.parametrize(
    ("column", "value", "taken"),
    [
        ("weights", "[0.5, -0.0, 5e-324, 1.7976931348623157e308]", True),
        ("weights", "[1, 2.0]", True),  # integers a float holds exactly, written as the source spelt them
        ("weights", "[123456789012345678901234567890]", False),  # beyond 64 bits: the reference reads it
        ("weights", "[1e400]", False),  # beyond the double range
        ("weights", "[NaN]", False),
        ("weights", "[true]", False),
        ("biases", "[]", True),
        ("connections", "[]", True),
        ("connections", '[{"target":"a","weight":1.0,"conn_type":"x","target":"b"}]', False),
        # 19 digits in a row that orjson's reading does not print again: the reference decides
        ("connections", '[{"target":"a","weight":12345678901234567890123.0,"conn_type":"x"}]', False),
        ("memory", '{"a": 1, "a": 2}', False),
        ("memory", '{"k": 123456789012345678901234567890}', False),
        ("memory", '{"k": 12345678901234567890}', True),  # below 2**64: orjson reads it exactly
        ("memory", '{"k": 1234567890123456789}', True),  # 19 digits that fit 64 bits: read exactly
        ("context", '{"focus": "\\ud800"}', False),
        ("neuron_type", "Planner", True),
        ("neuron_type", "plännér", False),
        ("avg_response_time", 5, False),  # an integer: the reference converts it
        ("is_async", 1, True),  # SQLite has no boolean
        ("is_async", 0, True),
        ("is_async", 2, False),
        ("is_async", "true", False),
        ("momentum", None, True),
        ("created_at", "yesterday", False),
        ("neuron_id", "not-a-uuid", False),
    ],
)
def test_edge_values_are_migrated_the_same_or_left_to_the_reference(
    column: str, value: Any, taken: bool
) -> None:
    raw = to_raw(make_neuron(), **{column: value})
    assert assert_same_as_reference(raw) is taken
