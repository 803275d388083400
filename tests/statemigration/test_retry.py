"""Failed rows can be fixed and retried: a DBA repairs them in the source, runs the worker again (same
target, same sharding), and they are migrated, exactly once, with counts and checksums right."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any

import psycopg

from tests.support.statemigration import Pair, events, migrate, run

# What a DBA might find and fix: each breaks one row in a way a different check refuses.
CORRUPTIONS = [
    ("weights", "'[0.5, NaN]'", "schema"),  # JSON cannot carry NaN
    ("memory", "'{\"a\": '", "decode"),  # truncated JSON
    ("connections", '\'[{"target": "t", "weight": 1.0}]\'', "schema"),  # a key missing
    ("biases", "'[1e999]'", "schema"),  # beyond the double range: infinity
    ("context", "'[]'", "schema"),  # not an object
]


def _ids(pair: Pair, count: int, offset: int = 0) -> list[str]:
    rows = pair.query(
        pair.source, f"SELECT neuron_id FROM neurons ORDER BY neuron_id LIMIT {count} OFFSET {offset}"
    )
    return [str(neuron_id) for (neuron_id,) in rows]


def _row(pair: Pair, neuron_id: str) -> tuple[Any, ...]:
    return pair.query(
        pair.source,
        f"SELECT weights, biases, connections, memory, context FROM neurons WHERE neuron_id = '{neuron_id}'",
    )[0]


def _restore(pair: Pair, neuron_id: str, original: tuple[Any, ...]) -> None:
    columns = ("weights", "biases", "connections", "memory", "context")
    for column, value in zip(columns, original, strict=True):
        quoted = str(value).replace("'", "''")
        pair.execute(pair.source, f"UPDATE neurons SET {column} = '{quoted}' WHERE neuron_id = '{neuron_id}'")


def _corrupt(pair: Pair, neuron_id: str, column: str, sql_value: str) -> None:
    pair.execute(pair.source, f"UPDATE neurons SET {column} = {sql_value} WHERE neuron_id = '{neuron_id}'")


def _failures(pair: Pair) -> dict[str, tuple[str, str]]:
    rows = pair.query(pair.target, "SELECT neuron_id, validator, reason FROM migration_failures")
    return {str(neuron_id): (validator, reason) for neuron_id, validator, reason in rows}


def _checkpoints(pair: Pair) -> list[tuple[int, int, int, str]]:
    rows = pair.query(
        pair.target,
        "SELECT shard_index, migrated, failed, checksum FROM migration_checkpoints ORDER BY shard_index",
    )
    return [(int(i), int(m), int(f), str(c)) for i, m, f, c in rows]


def _verifications(pair: Pair) -> dict[str, tuple[bool, int, int, int, str, str]]:
    rows = pair.query(
        pair.target,
        "SELECT scope, passed, source_count, target_count, failed_count, source_checksum, target_checksum"
        " FROM migration_verifications",
    )
    return {scope: (bool(p), int(s), int(t), int(f), sc, tc) for scope, p, s, t, f, sc, tc in rows}


def _assert_exactly_once(pair: Pair, expected_units: int) -> None:
    count, distinct = pair.query(
        pair.target, "SELECT count(*), count(DISTINCT unit_id) FROM hierarchical_units"
    )[0]
    assert (count, distinct) == (expected_units, expected_units)
    overlap = pair.query(
        pair.target,
        "SELECT count(*) FROM migration_failures f JOIN hierarchical_units u"
        " ON CAST(u.unit_id AS TEXT) = f.neuron_id",
    )[0][0]
    assert overlap == 0  # no row is both migrated and recorded as failed


def _fresh_target(pair: Pair, name: str) -> str:
    if pair.kind == "sqlite":
        return pair.target.replace("hier.db", f"{name}.db")
    admin = pair.target.rsplit("/", 1)[0] + "/postgres"
    database = f"{name}_{random.getrandbits(32):x}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    return pair.target.rsplit("/", 1)[0] + f"/{database}"


def test_fixed_rows_are_migrated_by_the_next_run(pair: Pair) -> None:
    pair.seed(400, seed_value=7)
    broken = _ids(pair, len(CORRUPTIONS), offset=50)
    originals = {neuron_id: _row(pair, neuron_id) for neuron_id in broken}
    for neuron_id, (column, value, _) in zip(broken, CORRUPTIONS, strict=True):
        _corrupt(pair, neuron_id, column, value)

    first = migrate(pair, "--batch-size", "64")
    assert first.returncode == 0, first.stderr  # failures are recorded, and NoDataLoss holds with them
    failures = _failures(pair)
    assert {neuron_id: validator for neuron_id, (validator, _) in failures.items()} == {
        neuron_id: validator for neuron_id, (_, _, validator) in zip(broken, CORRUPTIONS, strict=True)
    }
    assert _checkpoints(pair)[0][1:3] == (395, 5)
    before = pair.units()

    for neuron_id in broken:
        _restore(pair, neuron_id, originals[neuron_id])
    second = migrate(pair, "--batch-size", "64")
    assert second.returncode == 0, second.stderr
    log = events(second)
    assert log[0]["event"] == "already-finished"
    retried = [e for e in log if e["event"] == "retried-failures"]
    assert len(retried) == 1
    assert (retried[0]["retried"], retried[0]["now_migrated"], retried[0]["still_failing"]) == (5, 5, 0)
    assert (retried[0]["migrated"], retried[0]["failed"]) == (400, 0)
    assert log[-1]["event"] == "verified" and (log[-1]["migrated"], log[-1]["failed"]) == (400, 0)

    assert _failures(pair) == {}
    _assert_exactly_once(pair, 400)
    after = pair.units()
    assert {k: v for k, v in after.items() if k not in broken} == before  # the others are untouched
    (_, migrated, failed, checksum) = _checkpoints(pair)[0]
    assert (migrated, failed) == (400, 0)
    passed, source_count, target_count, failed_count, source_sum, target_sum = _verifications(pair)[
        "shard 0/1"
    ]
    assert (passed, source_count, target_count, failed_count) == (True, 400, 400, 0)
    assert checksum == source_sum == target_sum  # the running checksum took the fixed rows in

    # The fixed rows are what a clean migration of the repaired source gives.
    clean = Pair(pair.kind, pair.source, _fresh_target(pair, "clean"))
    assert migrate(clean, "--batch-size", "64").returncode == 0
    assert after == clean.units()
    assert _checkpoints(clean)[0][3] == checksum

    check = run("verify-state", env={"HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target})
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_retry_keeps_what_still_fails_and_forgets_what_is_gone(pair: Pair) -> None:
    pair.seed(300, seed_value=8)
    fixed, still, deleted = _ids(pair, 3, offset=10)
    originals = {neuron_id: _row(pair, neuron_id) for neuron_id in (fixed, still, deleted)}
    for neuron_id in (fixed, still, deleted):
        _corrupt(pair, neuron_id, "weights", "'[0.5, NaN]'")
    assert migrate(pair).returncode == 0
    assert set(_failures(pair)) == {fixed, still, deleted}

    _restore(pair, fixed, originals[fixed])
    _restore(pair, still, originals[still])
    _corrupt(pair, still, "memory", "'{\"a\": '")  # a different problem now
    pair.execute(pair.source, f"DELETE FROM neurons WHERE neuron_id = '{deleted}'")
    second = migrate(pair)
    assert second.returncode == 0, second.stderr
    retried = next(e for e in events(second) if e["event"] == "retried-failures")
    assert (
        retried["retried"],
        retried["now_migrated"],
        retried["still_failing"],
        retried["gone_from_source"],
    ) == (
        3,
        1,
        1,
        1,
    )
    failures = _failures(pair)
    assert list(failures) == [still]
    validator, reason = failures[still]
    assert validator == "decode" and reason.startswith("memory: invalid JSON")
    _assert_exactly_once(pair, 298)
    (_, migrated, failed, checksum) = _checkpoints(pair)[0]
    assert (migrated, failed) == (298, 1)
    passed, source_count, target_count, failed_count, source_sum, _ = _verifications(pair)["shard 0/1"]
    assert (passed, source_count, target_count, failed_count) == (True, 299, 298, 1)
    assert checksum == source_sum

    third = migrate(pair)  # nothing changed: the row that still fails is tried again, and stays
    assert third.returncode == 0
    retried = next(e for e in events(third) if e["event"] == "retried-failures")
    assert (retried["retried"], retried["now_migrated"], retried["still_failing"]) == (1, 0, 1)
    assert _checkpoints(pair)[0][1:] == (298, 1, checksum)


def test_each_shard_retries_its_own_failures(pair: Pair) -> None:
    pair.seed(600, seed_value=9)
    every = _ids(pair, 600)
    broken = every[::60]  # spread over the id space, so over both shards
    originals = {neuron_id: _row(pair, neuron_id) for neuron_id in broken}
    for neuron_id in broken:
        _corrupt(pair, neuron_id, "weights", "'[0.5, NaN]'")
    env = {"HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target}
    for index in (0, 1):
        result = run("migrate-state", "--shards", "2", "--shard", str(index), env=env)
        assert result.returncode == 0, result.stderr
    per_shard_failed = [failed for _, _, failed, _ in _checkpoints(pair)]
    assert sum(per_shard_failed) == len(broken) and min(per_shard_failed) > 0

    for neuron_id in broken:
        _restore(pair, neuron_id, originals[neuron_id])
    result = run("migrate-state", "--shards", "2", "--shard", "0", env=env)
    assert result.returncode == 0, result.stderr
    retried = next(e for e in events(result) if e["event"] == "retried-failures")
    assert retried["retried"] == retried["now_migrated"] == per_shard_failed[0]
    assert len(_failures(pair)) == per_shard_failed[1]  # shard 1's are left for shard 1
    result = run("migrate-state", "--shards", "2", "--shard", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert _failures(pair) == {}
    _assert_exactly_once(pair, 600)
    checkpoints = _checkpoints(pair)
    assert [failed for _, _, failed, _ in checkpoints] == [0, 0]
    assert sum(migrated for _, migrated, _, _ in checkpoints) == 600
    check = run("verify-state", env=env)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_retry_killed_midway_resumes_exactly_once(pair: Pair) -> None:
    """SIGKILL the worker while it retries many fixed rows (10 a transaction), then let it finish."""
    pair.seed(3000, seed_value=10)
    pair.execute(pair.source, "UPDATE neurons SET biases = '[NaN]'")
    first = migrate(pair, "--batch-size", "500")
    assert first.returncode == 0, first.stderr
    assert _checkpoints(pair)[0][1:3] == (0, 3000)
    pair.execute(pair.source, "UPDATE neurons SET biases = '[0.25, -0.0]'")

    env = {**os.environ, "HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target}
    command = [sys.executable, "-m", "hal9_migration.cli", "migrate-state", "--batch-size", "10"]
    rng = random.Random(12)
    seen = [0]
    for _ in range(3):
        worker = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _migrated(pair) <= seen[-1]:
            assert worker.poll() is None and time.monotonic() < deadline, "the retry made no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.1))
        assert worker.poll() is None, "the retry finished before the kill; use more rows"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        seen.append(_migrated(pair))
        (_, migrated, failed, _) = _checkpoints(pair)[0]
        assert migrated + failed == 3000  # every transaction moved rows from one count to the other
        assert len(_failures(pair)) == failed
        _assert_exactly_once(pair, migrated)
    assert seen == sorted(seen) and seen[-1] < 3000
    final = migrate(pair, "--batch-size", "10")
    assert final.returncode == 0, final.stderr
    _assert_exactly_once(pair, 3000)
    assert _failures(pair) == {}
    (_, migrated, failed, checksum) = _checkpoints(pair)[0]
    assert (migrated, failed) == (3000, 0)
    passed, *_, source_sum, target_sum = _verifications(pair)["shard 0/1"]
    assert passed and checksum == source_sum == target_sum


def _migrated(pair: Pair) -> int:
    try:
        return int(
            pair.query(pair.target, "SELECT coalesce(sum(migrated), 0) FROM migration_checkpoints")[0][0]
        )
    except (sqlite3.Error, psycopg.Error):
        return 0
