"""Shards partition the id space: every id in exactly one shard, boundaries in UUID order."""

from __future__ import annotations

import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration.statemigration.shards import Shard


@given(shards=st.integers(1, 64), neuron_id=st.text(max_size=40) | st.uuids().map(str))
def test_every_id_belongs_to_exactly_one_shard(shards: int, neuron_id: str) -> None:
    owners = [i for i in range(shards) if Shard(i, shards).owns(neuron_id)]
    assert len(owners) == 1


@given(shards=st.integers(2, 64), a=st.uuids(), b=st.uuids())
def test_string_order_of_canonical_ids_is_uuid_order(shards: int, a: uuid.UUID, b: uuid.UUID) -> None:
    assert (str(a) < str(b)) == (a.int < b.int)
    owner_a = next(i for i in range(shards) if Shard(i, shards).owns(str(a)))
    owner_b = next(i for i in range(shards) if Shard(i, shards).owns(str(b)))
    if a.int < b.int:
        assert owner_a <= owner_b


def test_random_ids_spread_evenly() -> None:
    rng = random.Random(7)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(40_000)]
    counts = [sum(Shard(i, 4).owns(x) for x in ids) for i in range(4)]
    assert min(counts) > 9_000


def test_bounds_and_names() -> None:
    first, middle, last = Shard(0, 4), Shard(1, 4), Shard(3, 4)
    assert first.lo is None and last.hi is None
    assert middle.lo == "40000000-0000-0000-0000-000000000000"
    assert middle.hi == "80000000-0000-0000-0000-000000000000"
    assert str(middle) == "1/4"
    assert Shard(0, 1).lo is None and Shard(0, 1).hi is None


@pytest.mark.parametrize(("index", "count"), [(0, 0), (4, 4), (-1, 2)])
def test_impossible_shards_are_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="--shard"):
        Shard(index, count)
