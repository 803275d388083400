"""Rows as each real store gives them take the fast path, and it writes what the reference writes.

The unit tests feed the fast path rows built in Python; a driver's own types (SQLite's 0/1 for a
boolean, PostgreSQL's text casts) are only met here.
"""

from __future__ import annotations

from hal9_migration.statemigration.fastpath import migrate_plain
from hal9_migration.statemigration.pipeline import migrate_reference
from hal9_migration.statemigration.shards import Shard
from hal9_migration.statemigration.stores.factory import open_store
from tests.support.statemigration import Pair

MIGRATED_AT = "2026-11-27T00:00:00+00:00"


def test_rows_from_the_store_take_the_fast_path_and_migrate_the_same(pair: Pair) -> None:
    pair.seed(600, seed_value=4)
    store = open_store(pair.source)
    try:
        rows = store.read_source(Shard(0, 1), None, store.source_cutoff() or "", 600)
    finally:
        store.close()
    assert len(rows) == 600
    taken = 0
    for raw in rows:
        fast = migrate_plain(raw, MIGRATED_AT)
        if fast is not None:
            taken += 1
            assert fast == migrate_reference(raw, MIGRATED_AT)
    assert taken >= 0.9 * len(rows)
