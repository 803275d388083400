"""Bad input gets a clear error, never a password, and leaves the target unchanged or resumable."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from hal9_migration.statemigration import seed
from hal9_migration.statemigration.stores.base import redact
from hal9_migration.statemigration.stores.factory import open_store
from tests.support import postgres as pg
from tests.support.statemigration import Pair, events, migrate, run


def test_source_without_a_column_is_refused_and_the_target_untouched(pair: Pair) -> None:
    pair.seed(50)
    pair.execute(pair.source, "ALTER TABLE neurons DROP COLUMN memory")
    result = migrate(pair)
    assert result.returncode == 2
    assert "lacks column(s): memory" in result.stderr
    if pair.kind == "sqlite":
        assert not Path(pair.target.removeprefix("sqlite:///")).exists()
    else:
        tables = pair.query(
            pair.target, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == [(0,)]


def test_a_source_that_is_no_hal9_store_is_refused(pair: Pair) -> None:
    pair.execute(pair.source, "CREATE TABLE customers (id integer)")
    result = migrate(pair)
    assert result.returncode == 2
    assert "has no table 'neurons'" in result.stderr


def test_a_corrupted_json_field_fails_that_row_only(pair: Pair) -> None:
    pair.seed(400)
    (victim,) = pair.query(
        pair.source, "SELECT neuron_id FROM neurons ORDER BY neuron_id LIMIT 1 OFFSET 123"
    )[0]
    pair.execute(pair.source, f"UPDATE neurons SET memory = '{{\"broken' WHERE neuron_id = '{victim}'")
    result = migrate(pair, "--batch-size", "50")
    assert result.returncode == 0, result.stderr
    failures = pair.query(pair.target, "SELECT neuron_id, validator, reason FROM migration_failures")
    assert [(str(f[0]), f[1]) for f in failures] == [(str(victim), "decode")]
    assert "memory" in failures[0][2]
    assert pair.query(pair.target, "SELECT count(*) FROM hierarchical_units")[0][0] == 399
    assert events(result)[-1]["failed"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:/relative-with-one-slash.db",
        "mysql://hal9:s3cret-pw@127.0.0.1/hal9",
        "postgresql://hal9:s3cret-pw@[::1/hal9",
        "not a url",
    ],
)
def test_malformed_urls_are_named_without_their_password(url: str, tmp_path: Path) -> None:
    result = run(
        "migrate-state", env={"HAL9_SOURCE_URL": url, "HAL9_TARGET_URL": f"sqlite:///{tmp_path}/t.db"}
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_an_unreachable_postgres_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://hal9:s3cret-pw@127.0.0.1:9/hal9"
    result = run(
        "migrate-state", env={"HAL9_SOURCE_URL": url, "HAL9_TARGET_URL": f"sqlite:///{tmp_path}/t.db"}
    )
    assert result.returncode == 2
    assert "cannot connect to PostgreSQL at postgresql://hal9:***@127.0.0.1:9/hal9" in result.stderr
    assert "s3cret-pw" not in result.stderr


@pytest.mark.parametrize("flag", ["--batch-size", "--converters"])
def test_a_count_below_one_is_refused_by_name(flag: str, tmp_path: Path) -> None:
    pair = Pair("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
    pair.seed(10)
    result = migrate(pair, flag, "0")
    assert result.returncode == 2
    assert f"{flag} must be at least 1, got 0" in result.stderr
    assert not (tmp_path / "hier.db").exists()


def test_a_missing_sqlite_source_is_not_created(tmp_path: Path) -> None:
    source = tmp_path / "nowhere.db"
    result = run(
        "migrate-state",
        env={"HAL9_SOURCE_URL": f"sqlite:///{source}", "HAL9_TARGET_URL": f"sqlite:///{tmp_path}/t.db"},
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert not source.exists()


def test_passwords_never_reach_the_output(postgres: pg.PostgresServer, pg_database: str) -> None:
    target = postgres.create_database("hier_secret_check")
    try:
        pair = Pair("postgres", pg_database, target)
        pair.seed(100)
        # Even passed as arguments (which we advise against), a URL is only ever printed redacted.
        result = run("migrate-state", "--source", pair.source, "--target", pair.target)
        assert result.returncode == 0, result.stderr
        assert postgres.password not in result.stdout + result.stderr
        assert redact(pg_database) != pg_database
    finally:
        postgres.drop_database("hier_secret_check")


def test_a_postgres_target_without_write_permission(postgres: pg.PostgresServer, pg_database: str) -> None:
    target = postgres.create_database("hier_read_only")
    try:
        Pair("postgres", pg_database, target).seed(20)
        reader = postgres.create_read_only_role("hier_read_only")
        result = run("migrate-state", env={"HAL9_SOURCE_URL": pg_database, "HAL9_TARGET_URL": reader})
        assert result.returncode == 2
        assert "cannot write to PostgreSQL database" in result.stderr
        assert "permission denied" in result.stderr
        with psycopg.connect(target, autocommit=True) as conn:
            assert conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone() == (0,)
    finally:
        postgres.drop_database("hier_read_only")


def test_a_sqlite_target_without_write_permission(tmp_path: Path) -> None:
    pair = Pair("sqlite", f"sqlite:///{tmp_path}/flat.db", f"sqlite:///{tmp_path}/locked/hier.db")
    pair.seed(20)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    command = [sys.executable, "-m", "hal9_migration.cli", "migrate-state"]
    if os.geteuid() == 0:
        # Root writes anywhere unless it gives up the capability to override file permissions.
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *command]
    result = subprocess.run(
        command,
        env={**os.environ, "HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot write to SQLite database" in result.stderr
    assert not (locked / "hier.db").exists()


def test_rows_added_during_the_run_are_not_half_migrated(pair: Pair) -> None:
    pair.seed(3000, seed_value=9)
    later = list(seed.generate(500, seed=99, start=_after_all()))
    env = {**os.environ, "HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target}
    command = [sys.executable, "-m", "hal9_migration.cli", "migrate-state", "--batch-size", "5"]
    worker = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(pair)
    store = open_store(pair.source)
    store.insert_flat(later)
    store.close()
    inserted_while_running = worker.poll() is None
    _, err = worker.communicate(timeout=300)
    assert inserted_while_running, "the worker finished before the rows were added; use more rows"
    assert worker.returncode == 0, err
    assert pair.query(pair.target, "SELECT count(*) FROM hierarchical_units")[0][0] == 3000
    final = [json.loads(line) for line in err.splitlines() if line.startswith("{")][-1]
    assert final["newer_rows_not_covered"] == 500
    assert final["cutoff"] < min(row[-1] for row in later)


def _after_all() -> datetime:
    """Later than every seeded row."""
    return datetime(2031, 1, 1, tzinfo=UTC)


def _wait_for_checkpoint(pair: Pair) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if pair.query(pair.target, "SELECT sum(migrated) FROM migration_checkpoints")[0][0]:
                return
        except (sqlite3.Error, psycopg.Error):
            pass
        time.sleep(0.05)
    raise AssertionError("the worker never committed a batch")
