"""Helpers for the state-migration tests: a source/target pair of one kind, and the CLI as a process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import psycopg

from hal9_migration.statemigration import seed
from hal9_migration.statemigration.stores.factory import open_store


@dataclass
class Pair:
    """A source and a target of one kind, and how to look inside them."""

    kind: str
    source: str
    target: str

    def seed(self, count: int, seed_value: int = 1) -> None:
        store = open_store(self.source)
        store.create_flat_table()
        store.insert_flat(list(seed.generate(count, seed=seed_value)))
        store.close()

    def query(self, url: str, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
                return conn.execute(sql).fetchall()
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(sql).fetchall()

    def execute(self, url: str, sql: str) -> None:
        if self.kind == "sqlite":
            conn = sqlite3.connect(url.removeprefix("sqlite:///"))
            conn.execute(sql)
            conn.commit()
            conn.close()
        else:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql)

    def units(self, url: str | None = None) -> dict[str, tuple[Any, ...]]:
        """Target rows by id, without the migration timestamp (which differs between runs)."""
        rows = self.query(
            url or self.target,
            "SELECT CAST(unit_id AS TEXT), layer, CAST(cognitive_state AS TEXT),"
            " CAST(learning_state AS TEXT), CAST(connections AS TEXT), CAST(metadata AS TEXT)"
            " FROM hierarchical_units",
        )
        out = {}
        for unit_id, *rest in rows:
            metadata = json.loads(rest[-1])
            metadata.pop("migrated_at")
            out[str(unit_id)] = (*[str(v) for v in rest[:-1]], json.dumps(metadata, sort_keys=True))
        return out


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hal9_migration.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def migrate(pair: Pair, *extra: str) -> subprocess.CompletedProcess[str]:
    # URLs through the environment, as the Job passes them: never in the process's arguments.
    return run("migrate-state", *extra, env={"HAL9_SOURCE_URL": pair.source, "HAL9_TARGET_URL": pair.target})


def events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
