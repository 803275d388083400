"""decode: a source row becomes a FlatNeuron, or a Failure naming the column; it never raises."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hal9_migration.statemigration import flat, units
from hal9_migration.statemigration.rows import FLAT_COLUMNS, FLAT_JSON_COLUMNS
from tests.unit.statemigration.conftest import decoded, exact, make_neuron, to_raw

NEURON = make_neuron()
NEURON_ID = NEURON["neuron_id"]


def failure_of(raw: Any) -> dict[str, Any]:
    result = flat.decode(raw)
    assert flat.is_failure(result), result
    return dict(result)


def test_a_valid_row_decodes_to_the_same_neuron_bit_for_bit() -> None:
    assert exact(decoded(to_raw(NEURON))) == exact(NEURON)


def test_sqlite_and_driver_spellings() -> None:
    raw = to_raw(
        NEURON,
        is_async=1,
        momentum=None,
        activation=1,
        learning_rate=0,
        avg_response_time=200,
        weights="[1, -2, 0.5]",
        neuron_id=uuid.UUID(NEURON_ID),
        memory=json.dumps(NEURON["memory"]).encode(),
    )
    result = decoded(raw)
    assert result["is_async"] is True
    assert result["momentum"] is None
    assert exact([result["activation"], result["learning_rate"], result["avg_response_time"]]) == exact(
        [1.0, 0.0, 200.0]
    )
    assert exact(result["weights"]) == exact([1.0, -2.0, 0.5])
    assert result["neuron_id"] == NEURON_ID
    assert result["memory"] == NEURON["memory"]
    assert decoded(to_raw(NEURON, is_async=0))["is_async"] is False


def test_an_int_connection_weight_becomes_a_float() -> None:
    conns = '[{"target": "t", "weight": 3, "conn_type": "lateral"}]'
    result = decoded(to_raw(NEURON, connections=conns))
    assert exact(result["connections"]) == exact([{"target": "t", "weight": 3.0, "conn_type": "lateral"}])


def test_timestamps_from_a_driver_become_iso_utc() -> None:
    aware = datetime(2026, 1, 2, 5, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    result = decoded(to_raw(NEURON, created_at=aware))
    assert datetime.fromisoformat(result["created_at"]) == aware
    assert result["created_at"].endswith("Z")
    naive = decoded(to_raw(NEURON, created_at=datetime(2026, 1, 2, 3, 0, 0)))
    assert datetime.fromisoformat(naive["created_at"]) == datetime(2026, 1, 2, 3, tzinfo=UTC)


# ------------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize("column", FLAT_JSON_COLUMNS)
@pytest.mark.parametrize("text", ["", "{not json", "[1.0,", '{"a": 1} trailing', "nul", "'single'"])
def test_invalid_json_is_a_decode_failure_naming_the_column(column: str, text: str) -> None:
    failure = failure_of(to_raw(NEURON, **{column: text}))
    assert failure["validator"] == "decode"
    assert failure["neuron_id"] == NEURON_ID
    assert failure["reason"].startswith(f"{column}: invalid JSON: ")


def test_invalid_json_reason_reads_well() -> None:
    assert (
        failure_of(to_raw(NEURON, memory=""))["reason"] == "memory: invalid JSON: Expecting value at char 0"
    )


@pytest.mark.parametrize("column", ["memory", "context", "connections"])
def test_a_duplicate_key_is_refused_rather_than_silently_dropped(column: str) -> None:
    text = {
        "memory": '{"a": 1, "a": 2}',
        "context": '{"focus": "x", "focus": "y"}',
        "connections": '[{"target": "t", "target": "u", "weight": 1.0, "conn_type": "forward"}]',
    }[column]
    failure = failure_of(to_raw(NEURON, **{column: text}))
    assert failure["validator"] == "decode"
    assert failure["reason"].startswith(f"{column}: invalid JSON: duplicate key")


def test_invalid_utf8_bytes_are_a_decode_failure() -> None:
    failure = failure_of(to_raw(NEURON, memory=b'{"a": "\xff"}'))
    assert failure["validator"] == "decode"
    assert failure["reason"].startswith("memory: invalid JSON: not UTF-8")


@pytest.mark.parametrize("column", FLAT_COLUMNS)
def test_a_missing_column_is_a_schema_failure(column: str) -> None:
    raw = to_raw(NEURON)
    del raw[column]
    failure = failure_of(raw)
    assert failure["validator"] == "schema"
    assert failure["reason"] == f"{column}: column missing"
    if column != "neuron_id":
        assert failure["neuron_id"] == NEURON_ID


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("weights", "{}"),
        ("weights", '"0.5"'),
        ("weights", '[0.1, "0.2"]'),
        ("weights", "[true, 0.5]"),
        ("weights", "[null]"),
        ("weights", "[[0.1]]"),
        ("weights", "[123456789012345678901234567890]"),  # no exact float
        ("weights", "[1" + "0" * 400 + "]"),  # beyond float range
        ("biases", "null"),
        ("biases", "[{}]"),
        ("connections", "{}"),
        ("connections", "[1]"),
        ("connections", "[[]]"),
        ("connections", '[{"target": "t", "weight": 1.0}]'),
        ("connections", '[{"target": "t", "weight": 1.0, "conn_type": "x", "extra": 1}]'),
        ("connections", '[{"target": 5, "weight": 1.0, "conn_type": "x"}]'),
        ("connections", '[{"target": "t", "weight": "1.0", "conn_type": "x"}]'),
        ("connections", '[{"target": "t", "weight": true, "conn_type": "x"}]'),
        ("connections", '[{"target": "t", "weight": 1.0, "conn_type": null}]'),
        ("memory", "[]"),
        ("memory", '"text"'),
        ("memory", "null"),
        ("context", "3"),
        ("context", "[{}]"),
        ("memory", None),
        ("weights", 5),
        ("neuron_type", 5),
        ("neuron_type", None),
        ("activation", "0.5"),
        ("activation", None),
        ("activation", True),
        ("learning_rate", [0.1]),
        ("momentum", "0.9"),
        ("momentum", False),
        ("avg_response_time", "fast"),
        ("connection_count", 1.5),
        ("connection_count", "10"),
        ("connection_count", True),
        ("is_async", 2),
        ("is_async", "yes"),
        ("is_async", None),
        ("created_at", "yesterday"),
        ("created_at", 1767225600),
        ("created_at", None),
    ],
)
def test_a_wrong_type_is_a_schema_failure_naming_the_column(column: str, value: Any) -> None:
    failure = failure_of(to_raw(NEURON, **{column: value}))
    assert failure["validator"] == "schema"
    assert failure["neuron_id"] == NEURON_ID
    assert failure["reason"].startswith(column)


@pytest.mark.parametrize(
    "neuron_id",
    [
        "not-a-uuid",
        "",
        "3f2b8c4e9a1d4e5f8b7a6c5d4e3f2a1b",  # no hyphens
        "{3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1b}",
        "urn:uuid:3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1b",
        "3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1",  # too short
        "3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1bb",  # too long
        "3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1g",  # not hex
        "3f2b8c4_-9a1d-4e5f-8b7a-6c5d4e3f2a1b",  # uuid.UUID() takes underscores
        "3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1b\n",
        " 3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1b",
        "3f2b8c4e9-a1d-4e5f-8b7a-6c5d4e3f2a1b",  # hyphen in the wrong place
    ],
)
def test_a_bad_uuid_is_a_schema_failure(neuron_id: str) -> None:
    failure = failure_of(to_raw(NEURON, neuron_id=neuron_id))
    assert failure["validator"] == "schema"
    assert failure["reason"].startswith("neuron_id:")
    assert "UUID" in failure["reason"]


@pytest.mark.parametrize("neuron_id", [None, 12345, b"3f2b8c4e-9a1d-4e5f-8b7a-6c5d4e3f2a1b"])
def test_a_neuron_id_of_the_wrong_type_is_a_schema_failure(neuron_id: Any) -> None:
    failure = failure_of(to_raw(NEURON, neuron_id=neuron_id))
    assert failure["validator"] == "schema"
    assert failure["reason"].startswith("neuron_id:")


def test_an_uppercase_uuid_is_kept_as_written() -> None:
    upper = NEURON_ID.upper()
    result = decoded(to_raw(NEURON, neuron_id=upper))
    assert result["neuron_id"] == upper


NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize(
    ("column", "value", "where"),
    [
        ("weights", "[1.0, NaN]", "weights"),
        ("weights", "[Infinity]", "weights"),
        ("weights", "[-Infinity, 0.5]", "weights"),
        ("weights", "[0.5, 1e999]", "weights[1]"),
        ("weights", "[1e308, 1e308, -1e999]", "weights[2]"),
        ("biases", "[NaN]", "biases"),
        ("biases", "[-1e400]", "biases[0]"),
        ("connections", '[{"target": "t", "weight": NaN, "conn_type": "x"}]', "connections"),
        ("connections", '[{"target": "t", "weight": 1e999, "conn_type": "x"}]', "connections[0].weight"),
        ("memory", '{"x": NaN}', "memory"),
        ("memory", '{"x": [1, {"y": 1e999}]}', "memory"),
        ("context", '{"focus": Infinity}', "context"),
        ("activation", NAN, "activation"),
        ("activation", INF, "activation"),
        ("learning_rate", -INF, "learning_rate"),
        ("momentum", NAN, "momentum"),
        ("avg_response_time", NAN, "avg_response_time"),
        ("avg_response_time", INF, "avg_response_time"),
    ],
)
def test_a_non_finite_number_is_a_schema_failure(column: str, value: Any, where: str) -> None:
    failure = failure_of(to_raw(NEURON, **{column: value}))
    assert failure["validator"] == "schema"
    assert failure["reason"].startswith(where)
    assert "non-finite" in failure["reason"]


def test_sums_that_overflow_are_not_mistaken_for_non_finite_weights() -> None:
    result = decoded(to_raw(NEURON, weights="[1.7e308, 1.7e308, -1.7e308]"))
    assert result["weights"] == [1.7e308, 1.7e308, -1.7e308]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("memory", '{"x": "\\ud800"}'),
        ("memory", '{"\\udfff": 1}'),
        ("context", '{"focus": ["ok", "\\udc00"]}'),
        ("connections", '[{"target": "\\ud83d", "weight": 1.0, "conn_type": "x"}]'),
        ("connections", '[{"target": "t", "weight": 1.0, "conn_type": "\\ud83d"}]'),
        ("neuron_type", "type\ud800"),
        ("memory", '{"x": "raw \ud800"}'),
    ],
)
def test_a_lone_surrogate_is_a_schema_failure(column: str, value: str) -> None:
    failure = failure_of(to_raw(NEURON, **{column: value}))
    assert failure["validator"] == "schema"
    assert failure["reason"].startswith(column)
    assert "surrogate" in failure["reason"]


def test_an_escaped_surrogate_pair_is_fine() -> None:
    result = decoded(to_raw(NEURON, memory='{"x": "\\ud83e\\udde0"}'))
    assert result["memory"] == {"x": "🧠"}


def test_deep_nesting_is_a_failure_not_a_crash() -> None:
    failure = failure_of(to_raw(NEURON, memory='{"a":' * 100_000 + "1" + "}" * 100_000))
    assert failure["validator"] == "decode"
    assert failure["reason"].startswith("memory: invalid JSON")


# --------------------------------------------------------------------------------------- never raises


class Hostile(Mapping[str, Any]):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getitem__(self, key: str) -> Any:
        raise self.error

    def __iter__(self) -> Iterator[str]:
        return iter(FLAT_COLUMNS)

    def __len__(self) -> int:
        return len(FLAT_COLUMNS)

    def __contains__(self, key: object) -> bool:
        return True


@pytest.mark.parametrize(
    "raw",
    [None, 5, "row", [], {}, Hostile(RuntimeError("boom")), Hostile(KeyError("neuron_id"))],
)
def test_decode_never_raises(raw: Any) -> None:
    failure = failure_of(raw)
    assert failure["validator"] in ("decode", "schema")
    assert isinstance(failure["neuron_id"], str)
    assert failure["reason"]


def test_an_unknown_driver_type_is_a_schema_failure() -> None:
    failure = failure_of(to_raw(NEURON, weights=object()))
    assert failure["validator"] == "schema"
    assert failure["reason"].startswith("weights: expected JSON text")


def test_reasons_stay_short_whatever_the_row_holds() -> None:
    long_id = "x" * 10_000
    failure = failure_of(to_raw(NEURON, neuron_id=long_id, memory="[" * 10))
    assert len(failure["reason"]) <= 500
    assert len(failure["neuron_id"]) <= 100
    failure = failure_of(to_raw(NEURON, activation=10**5000))
    assert failure["reason"] == "activation: integer is out of float range"
    failure = failure_of(to_raw(NEURON, memory='{"' + "k" * 5000 + '": 1, "' + "k" * 5000 + '": 2}'))
    assert len(failure["reason"]) < 200


def test_a_long_reason_from_validate_is_cut() -> None:
    neuron = make_neuron()
    unit = units.convert(neuron, "2026-01-01T00:00:00Z")
    unit["connections"][0]["target_id"] = "t" * 5000
    failure = units.validate(neuron, unit)
    assert failure is not None
    assert failure["validator"] == "consistency"
    assert len(failure["reason"]) <= 500
