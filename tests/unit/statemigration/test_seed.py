"""The seed generator: rows that look like HAL9's, cover the edge cases early, and all migrate."""

from __future__ import annotations

import itertools
import json
import unicodedata
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hal9_migration.statemigration import pipeline, seed, units
from hal9_migration.statemigration.fingerprint import fingerprint_neuron, fingerprint_unit
from hal9_migration.statemigration.rows import FLAT_COLUMNS, FLAT_JSON_COLUMNS, FlatNeuron
from tests.unit.statemigration.conftest import MIGRATED_AT, TYPE_LAYERS, decoded, unit_row

FIRST = 1000


def rows(count: int = FIRST, **kwargs: Any) -> list[dict[str, Any]]:
    out = []
    for row in seed.generate(count, **kwargs):
        assert len(row) == len(FLAT_COLUMNS)
        out.append(dict(zip(FLAT_COLUMNS, row, strict=True)))
    return out


@pytest.fixture(scope="module")
def first() -> list[dict[str, Any]]:
    return rows()


@pytest.fixture(scope="module")
def neurons(first: list[dict[str, Any]]) -> list[FlatNeuron]:
    return [decoded(raw) for raw in first]


def test_every_row_decodes_converts_and_validates(first: list[dict[str, Any]]) -> None:
    for raw in first:
        neuron = decoded(raw)
        unit = units.convert(neuron, MIGRATED_AT)
        assert units.validate(neuron, unit) is None
        assert fingerprint_unit(unit) == fingerprint_neuron(neuron)
        back = units.decode_unit(unit_row(units.encode_unit(unit)))
        assert fingerprint_unit(back) == fingerprint_neuron(neuron)
        result = pipeline.migrate_row(raw, MIGRATED_AT)
        assert isinstance(result, tuple)
        assert fingerprint_unit(units.decode_unit(unit_row(result[0]))) == result[1]


@pytest.mark.parametrize(
    ("seed_", "weights", "connections"), [(1, 64, 8), (7, 0, 0), (99, 3, 1), (5, 300, 40)]
)
def test_other_seeds_and_shapes_also_migrate(seed_: int, weights: int, connections: int) -> None:
    for raw in rows(300, seed=seed_, weights=weights, connections=connections):
        neuron = decoded(raw)
        assert len(neuron["weights"]) == weights
        assert len(neuron["connections"]) == connections
        assert units.validate(neuron, units.convert(neuron, MIGRATED_AT)) is None


def test_row_shape(first: list[dict[str, Any]]) -> None:
    for raw in first[:50]:
        for column in FLAT_JSON_COLUMNS:
            assert isinstance(raw[column], str)
            json.loads(raw[column])
        assert isinstance(raw["is_async"], bool)
        assert isinstance(raw["connection_count"], int)
        assert len(json.loads(raw["weights"])) == 64
        assert len(json.loads(raw["connections"])) == 8


def test_deterministic_for_a_seed() -> None:
    assert list(seed.generate(200, seed=3)) == list(seed.generate(200, seed=3))
    assert list(seed.generate(200, seed=3)) != list(seed.generate(200, seed=4))
    # A prefix is the start of a longer run: a benchmark at 1M rows begins with the tested rows.
    assert list(seed.generate(50, seed=3)) == list(seed.generate(200, seed=3))[:50]


def test_ids_are_unique_uuid4(first: list[dict[str, Any]]) -> None:
    ids = [raw["neuron_id"] for raw in first]
    assert len(set(ids)) == len(ids)
    for neuron_id in ids:
        parsed = uuid.UUID(neuron_id)
        assert str(parsed) == neuron_id
        assert parsed.version == 4


def test_created_at_increases_from_start() -> None:
    stamps = [datetime.fromisoformat(raw["created_at"]) for raw in rows(300)]
    assert stamps[0] == datetime(2026, 1, 1, tzinfo=UTC)
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert all(s.tzinfo is not None and s.utcoffset() == timedelta(0) for s in stamps)


@pytest.mark.parametrize(
    "start",
    [datetime(2025, 6, 1, 12, 30), datetime(2025, 6, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))],
)
def test_created_at_honours_start(start: datetime) -> None:
    raw = rows(2, start=start)
    assert datetime.fromisoformat(raw[0]["created_at"]) == datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
    assert raw[0]["created_at"].endswith("Z")


def test_every_layer_by_type_and_by_behaviour_early(neurons: list[FlatNeuron]) -> None:
    by_type: set[str] = set()
    by_behaviour: set[str] = set()
    for n in neurons:
        layer = units.assign_layer(n["neuron_type"], n["avg_response_time"], n["connection_count"])
        (by_type if n["neuron_type"].lower() in TYPE_LAYERS else by_behaviour).add(layer)
    assert by_type == {"L1", "L2", "L3", "L4", "L5"}
    assert by_behaviour == {"L1", "L2", "L3", "L4"}  # the behaviour rule never gives L5


def test_every_known_type_and_unknown_ones_early(neurons: list[FlatNeuron]) -> None:
    types = {n["neuron_type"] for n in neurons}
    assert set(TYPE_LAYERS) <= types
    assert any(t != t.lower() and t.lower() in TYPE_LAYERS for t in types)  # another case
    assert len({t for t in types if t.lower() not in TYPE_LAYERS}) >= 3


def test_behaviour_edges_are_met_with_unknown_types_early(neurons: list[FlatNeuron]) -> None:
    unknown = [n for n in neurons if n["neuron_type"].lower() not in TYPE_LAYERS]
    pairs = Counter((n["avg_response_time"], n["connection_count"]) for n in unknown)
    times = Counter(n["avg_response_time"] for n in unknown)
    for edge in (9.999, 10.0, 199.999, 200.0):
        assert times[edge] >= 3, edge
    assert pairs[(200.0, 10)] >= 1  # → L3
    assert pairs[(200.0, 11)] >= 1  # → L4
    counts = Counter(n["connection_count"] for n in neurons)
    assert counts[10] >= 50
    assert counts[11] >= 50
    # And the layers those edges give are the ones DESIGN §5 says.
    for n in unknown:
        rt, count = n["avg_response_time"], n["connection_count"]
        layer = units.assign_layer(n["neuron_type"], rt, count)
        if rt == 9.999:
            assert layer == "L1"
        elif rt in (10.0, 199.999):
            assert layer == "L2"
        elif rt == 200.0:
            assert layer == ("L4" if count == 11 else "L3" if count == 10 else layer)


def test_momentum_present_and_absent(neurons: list[FlatNeuron]) -> None:
    momenta = [n["momentum"] for n in neurons]
    assert momenta.count(None) >= 100
    present = [m for m in momenta if m is not None]
    assert len(present) >= 100
    assert 0.0 in present  # falsy, yet present: must not become the default


def test_connection_types_known_and_unknown(neurons: list[FlatNeuron]) -> None:
    types = Counter(c["conn_type"] for n in neurons for c in n["connections"])
    mapped = Counter(units.connection_type(t) for t in types.elements())
    assert set(mapped) == {"Forward", "Backward", "Lateral"}
    unknown = [t for t in types if t.lower() not in ("forward", "backward", "lateral")]
    assert len(unknown) >= 2
    assert any(t != t.lower() and t.lower() in ("forward", "backward", "lateral") for t in types)


def test_connection_targets_mostly_point_at_earlier_neurons(first: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    inside = outside = 0
    for raw in first:
        for conn in json.loads(raw["connections"]):
            if conn["target"] in seen:
                inside += 1
            else:
                outside += 1
        seen.add(raw["neuron_id"])
    assert inside > outside > 0


def _scripts(text: str) -> set[str]:
    found = set()
    for ch in text:
        if ord(ch) > 0x1F000:
            found.add("emoji")
        elif ord(ch) > 127:
            name = unicodedata.name(ch, "")
            found.add("rtl" if unicodedata.bidirectional(ch) in ("R", "AL") else "non-ascii")
            if "COMBINING" in name:
                found.add("combining")
    return found


def test_unicode_in_memory_and_context(first: list[dict[str, Any]]) -> None:
    for column in ("memory", "context"):
        found: set[str] = set()
        for raw in first:
            found |= _scripts(json.dumps(json.loads(raw[column]), ensure_ascii=False))
        assert {"emoji", "rtl", "non-ascii"} <= found, column


def test_focus_present_absent_and_of_every_kind(neurons: list[FlatNeuron]) -> None:
    with_focus = [n["context"]["focus"] for n in neurons if "focus" in n["context"]]
    without = [n for n in neurons if "focus" not in n["context"]]
    assert len(with_focus) >= 100
    assert len(without) >= 100
    kinds = {type(f).__name__ for f in with_focus}
    assert {"NoneType", "str", "dict", "list", "float"} <= kinds


def test_floats_that_are_easy_to_lose(neurons: list[FlatNeuron], first: list[dict[str, Any]]) -> None:
    weights = [w for n in neurons for w in n["weights"]]
    assert any(w == 0.0 and str(w) == "-0.0" for w in weights)
    assert any(0.0 < abs(w) < 2.2250738585072014e-308 for w in weights)  # subnormal
    assert any(abs(w) > 1e300 for w in weights)
    assert any("," + token + "," in raw["weights"] for raw in first for token in ("1", "-3"))  # ints


def test_memory_sometimes_empty_and_sometimes_nested(neurons: list[FlatNeuron]) -> None:
    assert any(n["memory"] == {} for n in neurons)
    assert any(isinstance(n["memory"].get("episodic"), dict) for n in neurons)


def test_zero_count_and_bad_arguments() -> None:
    assert list(seed.generate(0)) == []
    with pytest.raises(ValueError, match="negative"):
        list(seed.generate(-1))
