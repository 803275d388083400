"""The migration worker against real SQLite and PostgreSQL: exactly-once, resumable, verified."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from hal9_migration.statemigration import verify
from hal9_migration.statemigration.shards import Shard
from hal9_migration.statemigration.stores.factory import open_store
from tests.support.processes import alive, children
from tests.support.statemigration import Pair, events, migrate, run


def test_migrates_verifies_and_records_progress(pair: Pair) -> None:
    pair.seed(1200)
    result = migrate(pair, "--batch-size", "100")
    assert result.returncode == 0, result.stderr
    source_count = pair.query(pair.source, "SELECT count(*) FROM neurons")[0][0]
    assert pair.query(pair.target, "SELECT count(*) FROM hierarchical_units")[0][0] == source_count == 1200
    assert pair.query(pair.target, "SELECT count(*) FROM migration_failures")[0][0] == 0
    (passed, src, dst) = pair.query(
        pair.target, "SELECT passed, source_count, target_count FROM migration_verifications"
    )[0]
    assert (bool(passed), src, dst) == (True, 1200, 1200)
    total, migrated, state = pair.query(pair.target, "SELECT total, migrated, state FROM migration_progress")[
        0
    ]
    assert (total, migrated, state) == (1200, 1200, "Verified")
    log = events(result)
    assert log[0]["event"] == "start" and log[-1]["event"] == "verified"
    assert log[-1]["newer_rows_not_covered"] == 0

    check = run("verify-state", env={"HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target})
    assert check.returncode == 0, check.stderr
    overall = json.loads(check.stdout.splitlines()[-1])
    assert overall["scope"] == "overall" and overall["passed"] is True
    assert overall["source_checksum"] == overall["target_checksum"]


def test_rerunning_a_finished_shard_changes_nothing(pair: Pair) -> None:
    pair.seed(300)
    assert migrate(pair).returncode == 0
    before = pair.query(pair.target, "SELECT unit_id, metadata FROM hierarchical_units ORDER BY unit_id")
    again = migrate(pair)
    assert again.returncode == 0, again.stderr
    assert events(again)[0]["event"] == "already-finished"
    assert (
        pair.query(pair.target, "SELECT unit_id, metadata FROM hierarchical_units ORDER BY unit_id") == before
    )


def test_verification_catches_a_changed_target_row(pair: Pair) -> None:
    pair.seed(200)
    assert migrate(pair).returncode == 0
    pair.execute(pair.target, "UPDATE hierarchical_units SET layer = 'L5' WHERE layer <> 'L5'")
    check = run("verify-state", env={"HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target})
    assert check.returncode == 1
    assert json.loads(check.stdout.splitlines()[-1])["passed"] is False


def test_verification_reports_a_target_row_that_is_not_a_unit(pair: Pair) -> None:
    pair.seed(50)
    assert migrate(pair).returncode == 0
    pair.execute(
        pair.target,
        "UPDATE hierarchical_units SET learning_state = '{\"weights\": [1e999]}'"
        " WHERE unit_id = (SELECT unit_id FROM hierarchical_units ORDER BY unit_id LIMIT 1)",
    )
    check = run("verify-state", env={"HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target})
    assert check.returncode == 1, check.stderr  # a finding, not a crash
    shard, overall = (json.loads(line) for line in check.stdout.splitlines())
    assert overall["passed"] is False
    assert shard["target_count"] == 50
    assert any("is not a unit: learning_state: non-finite number" in p for p in shard["problems"])


def test_verification_in_helper_processes_finds_what_one_process_finds(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair.seed(3000, seed_value=6)
    assert migrate(pair, "--converters", "1").returncode == 0
    pair.execute(
        pair.target,
        "UPDATE hierarchical_units SET learning_state = '{\"weights\": [1e999]}'"
        " WHERE unit_id = (SELECT unit_id FROM hierarchical_units ORDER BY unit_id LIMIT 1)",
    )
    monkeypatch.setattr(verify, "VERIFY_BATCH", 100)  # 30 pages: enough for the pool to be used
    source, target = open_store(pair.source), open_store(pair.target)
    try:
        cutoff = target.run_info()[0]  # type: ignore[index]
        peaks: dict[int, int] = {}
        alone = verify.verify_shard(source, target, Shard(0, 1), cutoff, helpers=1)
        helped = verify.verify_shard(source, target, Shard(0, 1), cutoff, helpers=2, peaks=peaks)
    finally:
        source.close()
        target.close()
    assert len(peaks) == 2  # both helper processes fingerprinted pages
    assert helped == alone
    assert (helped.source_count, helped.target_count, helped.passed) == (3000, 3000, False)
    assert len(helped.problems) == 1 and "is not a unit: learning_state: non-finite" in helped.problems[0]


def test_sigkilled_worker_resumes_exactly_once(pair: Pair) -> None:
    """SIGKILL the worker at random moments inside its batch loop, 20 times, then let it finish."""
    pair.seed(16000, seed_value=3)
    env = {**os.environ, "HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target}
    command = [sys.executable, "-m", "hal9_migration.cli", "migrate-state", "--batch-size", "10"]
    rng = random.Random(11)
    migrated = [0]
    for _ in range(20):
        worker = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        # Strike only once this worker has committed a batch, so every kill lands in the batch loop,
        # where most of the time is spent inside a target transaction (tiny batches make commits
        # dominate): somewhere between two commits or in the middle of one.
        _wait_until_more_than(pair, migrated[-1], worker)
        time.sleep(rng.uniform(0, 0.1))
        assert worker.poll() is None, "the migration finished before 20 kills; use more rows"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        migrated.append(_migrated(pair))
    assert migrated == sorted(migrated) and migrated[-1] < 16000
    final = migrate(pair, "--batch-size", "10")
    assert final.returncode == 0, final.stderr
    assert events(final)[0]["event"] == "resume"
    ids = pair.query(pair.target, "SELECT count(*), count(DISTINCT unit_id) FROM hierarchical_units")[0]
    assert ids == (16000, 16000)
    (passed,) = pair.query(pair.target, "SELECT passed FROM migration_verifications")[0]
    assert bool(passed)


def _migrated(pair: Pair) -> int:
    try:
        return int(
            pair.query(pair.target, "SELECT coalesce(sum(migrated), 0) FROM migration_checkpoints")[0][0]
        )
    except (sqlite3.Error, psycopg.Error):  # the tables may not exist yet
        return 0


def _wait_until_more_than(pair: Pair, count: int, worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while _migrated(pair) <= count:
        assert worker.poll() is None and time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.01)


def test_four_concurrent_shards_write_exactly_what_one_shard_writes(pair: Pair, tmp_path: Path) -> None:
    pair.seed(2000, seed_value=5)
    assert migrate(pair, "--batch-size", "64").returncode == 0
    one_shard = pair.units()
    sharded = Pair(pair.kind, pair.source, _another_target(pair, tmp_path))
    env = {**os.environ, "HAL9_SOURCE_URL": sharded.source, "HAL9_TARGET_URL": sharded.target}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hal9_migration.cli",
                "migrate-state",
                "--batch-size",
                "64",
                "--shards",
                "4",
            ],
            env={**env, "JOB_COMPLETION_INDEX": str(i)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        final = [json.loads(line) for line in err.splitlines() if line.startswith("{")][-1]
        assert final["migrated"] > 300 and final["newer_rows_not_covered"] == 0, err
    assert sharded.units() == one_shard
    per_shard = sharded.query(
        sharded.target, "SELECT migrated FROM migration_checkpoints ORDER BY shard_index"
    )
    assert sum(n for (n,) in per_shard) == 2000 and min(n for (n,) in per_shard) > 300
    check = run("verify-state", env={"HAL9_SOURCE_URL": sharded.source, "HAL9_TARGET_URL": sharded.target})
    assert check.returncode == 0, check.stdout + check.stderr
    assert [json.loads(line)["scope"] for line in check.stdout.splitlines()] == [
        "shard 0/4",
        "shard 1/4",
        "shard 2/4",
        "shard 3/4",
        "overall",
    ]


def test_converter_processes_write_exactly_what_one_converter_writes(pair: Pair, tmp_path: Path) -> None:
    pair.seed(3000, seed_value=9)
    one = migrate(pair, "--batch-size", "100", "--converters", "1")
    assert one.returncode == 0, one.stderr
    assert events(one)[-1]["converters"] == 0  # converted in the worker's own process
    pooled = Pair(pair.kind, pair.source, _another_target(pair, tmp_path))
    three = migrate(pooled, "--batch-size", "100", "--converters", "3")
    assert three.returncode == 0, three.stderr
    final = events(three)[-1]
    assert final["event"] == "verified" and final["converters"] == 3
    assert pooled.units() == pair.units() and len(pair.units()) == 3000


def test_a_sigkilled_worker_leaves_no_converter_process_behind(pair: Pair) -> None:
    pair.seed(16000, seed_value=3)
    env = {**os.environ, "HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target}
    command = [sys.executable, "-m", "hal9_migration.cli", "migrate-state", "--batch-size", "10"]
    worker = subprocess.Popen([*command, "--converters", "2"], env=env, stderr=subprocess.DEVNULL)
    _wait_until_more_than(pair, 0, worker)
    helpers = children(worker.pid)
    assert len(helpers) >= 2, helpers  # the converters (and the spawn machinery's helper)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 10
    while (running := [pid for pid in helpers if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running == [], "converter processes outlived their worker"
    final = migrate(pair, "--batch-size", "500")
    assert final.returncode == 0, final.stderr
    ids = pair.query(pair.target, "SELECT count(*), count(DISTINCT unit_id) FROM hierarchical_units")[0]
    assert ids == (16000, 16000)


def _another_target(pair: Pair, tmp_path: Path) -> str:
    if pair.kind == "sqlite":
        return f"sqlite:///{tmp_path / 'hier-sharded.db'}"
    admin = pair.target.rsplit("/", 1)[0] + "/postgres"
    name = f"sharded_{random.getrandbits(32):x}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pair.target.rsplit("/", 1)[0] + f"/{name}"
