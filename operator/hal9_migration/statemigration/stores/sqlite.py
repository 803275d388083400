"""SQLite, the embedded default: ``sqlite:///relative.db`` or ``sqlite:////absolute.db``.

WAL mode with ``synchronous=NORMAL``: a killed worker loses nothing committed, and a power cut can
only lose whole recent transactions (batch and checkpoint together), never split them. Writers take
the lock up front (``BEGIN IMMEDIATE``), so concurrent shards queue instead of failing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..rows import FLAT_COLUMNS, UNIT_COLUMNS, Failure
from ..shards import Shard
from .base import (
    Checkpoint,
    Progress,
    RunReport,
    SchemaError,
    StoreError,
    Verification,
)

BUSY_TIMEOUT_SECONDS = 120
WAL_CHECKPOINT_PAGES = 16384
# Rows of IN (...) look-ups per statement (SQLite allows 32766 variables since 3.32).
IDS_PER_QUERY = 500

FLAT_SCHEMA = """
CREATE TABLE IF NOT EXISTS neurons (
    neuron_id TEXT PRIMARY KEY NOT NULL,
    neuron_type TEXT NOT NULL,
    activation REAL NOT NULL,
    weights TEXT NOT NULL,
    biases TEXT NOT NULL,
    learning_rate REAL NOT NULL,
    momentum REAL,
    connections TEXT NOT NULL,
    memory TEXT NOT NULL,
    context TEXT NOT NULL,
    avg_response_time REAL NOT NULL,
    connection_count INTEGER NOT NULL,
    is_async INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""

TARGET_SCHEMA = """
CREATE TABLE IF NOT EXISTS hierarchical_units (
    unit_id TEXT PRIMARY KEY NOT NULL,
    layer TEXT NOT NULL CHECK (layer IN ('L1', 'L2', 'L3', 'L4', 'L5')),
    cognitive_state TEXT NOT NULL,
    learning_state TEXT NOT NULL,
    connections TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS migration_runs (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cutoff TEXT NOT NULL,
    shard_count INTEGER NOT NULL,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS migration_checkpoints (
    shard_index INTEGER NOT NULL,
    shard_count INTEGER NOT NULL,
    cutoff TEXT NOT NULL,
    total INTEGER NOT NULL,
    last_id TEXT,
    migrated INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    finished INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (shard_index, shard_count)
);
CREATE TABLE IF NOT EXISTS migration_failures (
    neuron_id TEXT PRIMARY KEY NOT NULL,
    validator TEXT NOT NULL,
    reason TEXT NOT NULL,
    shard TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS migration_progress (
    shard TEXT PRIMARY KEY NOT NULL,
    total INTEGER NOT NULL,
    migrated INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    rate REAL NOT NULL,
    eta_seconds REAL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS migration_verifications (
    scope TEXT PRIMARY KEY NOT NULL,
    passed INTEGER NOT NULL,
    source_count INTEGER NOT NULL,
    target_count INTEGER NOT NULL,
    failed_count INTEGER NOT NULL,
    source_checksum TEXT NOT NULL,
    target_checksum TEXT NOT NULL,
    problems TEXT NOT NULL,
    verified_at TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _range(column: str, shard: Shard, after: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of a keyset scan over one shard."""
    clauses, params = [], []
    if after is not None:
        clauses.append(f"{column} > ?")
        params.append(after)
    elif shard.lo is not None:
        clauses.append(f"{column} >= ?")
        params.append(shard.lo)
    if shard.hi is not None:
        clauses.append(f"{column} < ?")
        params.append(shard.hi)
    return " AND ".join(clauses) or "1", params


class SQLiteStore:
    def __init__(self, url: str) -> None:
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise StoreError(
                f"malformed SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        self.path = Path(url.removeprefix("sqlite:///"))
        self._conn: sqlite3.Connection | None = None
        self._read_only = False

    # --- connections ---------------------------------------------------------------------------------

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if read_only and not self.path.exists():
            raise StoreError(f"SQLite database {self.path} does not exist")
        try:
            if read_only:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                # Checkpoint the WAL into the database every 64 MiB rather than every 4 MiB: a batch
                # of converted rows is several MiB, and each checkpoint costs a pass over its pages.
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        except sqlite3.Error as error:
            if not read_only:
                raise _write_error(self.path, error) from error
            raise StoreError(f"cannot open SQLite database {self.path}: {error}") from error
        conn.row_factory = _dict_row
        self._conn, self._read_only = conn, read_only
        return conn

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        with self._transaction() as conn:
            for sql, params in statements:
                conn.execute(sql, params)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front; rolled back on any error."""
        conn = self._connect(read_only=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _write_error(self.path, error) from error

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- source ------------------------------------------------------------------------------------

    def create_flat_table(self) -> None:
        conn = self._connect(read_only=False)
        try:
            conn.executescript(FLAT_SCHEMA)
        except sqlite3.Error as error:
            raise _write_error(self.path, error) from error

    def insert_flat(self, rows: Iterable[Sequence[Any]]) -> int:
        """Load flat rows (``FLAT_COLUMNS`` order); for seeding test and benchmark data."""
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                f"INSERT INTO neurons ({', '.join(FLAT_COLUMNS)}) VALUES ({', '.join('?' * len(FLAT_COLUMNS))})",
                rows,
            )
        return conn.total_changes - before

    def check_source_schema(self) -> None:
        conn = self._connect(read_only=True)
        try:
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(neurons)")}
        except sqlite3.DatabaseError as error:
            raise SchemaError(f"{self.path} is not a readable SQLite database: {error}") from error
        if not columns:
            raise SchemaError(f"{self.path} has no table 'neurons': it is not a flat HAL9 store")
        missing = [c for c in FLAT_COLUMNS if c not in columns]
        if missing:
            raise SchemaError(f"source table 'neurons' in {self.path} lacks column(s): {', '.join(missing)}")

    def source_cutoff(self) -> str | None:
        row = (
            self._connect(read_only=True).execute("SELECT max(created_at) AS cutoff FROM neurons").fetchone()
        )
        return None if row["cutoff"] is None else str(row["cutoff"])

    def count_source(self, shard: Shard, cutoff: str | None) -> int:
        where, params = _range("neuron_id", shard, None)
        if cutoff is not None:
            where, params = f"{where} AND created_at <= ?", [*params, cutoff]
        sql = f"SELECT count(*) AS n FROM neurons WHERE {where}"
        return int(self._connect(read_only=True).execute(sql, params).fetchone()["n"])

    def read_source(self, shard: Shard, after: str | None, cutoff: str, limit: int) -> list[dict[str, Any]]:
        where, params = _range("neuron_id", shard, after)
        sql = (
            f"SELECT {', '.join(FLAT_COLUMNS)} FROM neurons WHERE {where} AND created_at <= ? "
            "ORDER BY neuron_id LIMIT ?"
        )
        return self._dicts(self._connect(read_only=True), sql, [*params, cutoff, limit], FLAT_COLUMNS)

    def read_source_ids(self, ids: Sequence[str], cutoff: str) -> list[dict[str, Any]]:
        conn = self._connect(read_only=True)
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = list(ids[start : start + IDS_PER_QUERY])
            sql = (
                f"SELECT {', '.join(FLAT_COLUMNS)} FROM neurons"
                f" WHERE neuron_id IN ({', '.join('?' * len(chunk))}) AND created_at <= ?"
            )
            rows += self._dicts(conn, sql, [*chunk, cutoff], FLAT_COLUMNS)
        return rows

    @staticmethod
    def _dicts(
        conn: sqlite3.Connection, sql: str, params: Sequence[Any], columns: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Rows as dicts, built in one comprehension (a Python row factory costs a call per row)."""
        cursor = conn.cursor()
        cursor.row_factory = None
        return [dict(zip(columns, row, strict=True)) for row in cursor.execute(sql, params).fetchall()]

    # --- target ------------------------------------------------------------------------------------

    def ensure_target_schema(self) -> None:
        # In one write transaction taken up front: shards starting together would otherwise each read
        # the schema, then find it changed by another when they write ("database is locked" at once,
        # without waiting, since waiting could not help a transaction whose snapshot is stale).
        conn = self._connect(read_only=False)
        try:
            conn.executescript(f"BEGIN IMMEDIATE; {TARGET_SCHEMA} COMMIT;")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _write_error(self.path, error) from error

    def begin_run(self, cutoff: str, shard_count: int) -> str:
        self._write(
            [
                (
                    "INSERT OR IGNORE INTO migration_runs (id, cutoff, shard_count, started_at) VALUES (1, ?, ?, ?)",
                    (cutoff, shard_count, _now()),
                )
            ]
        )
        run = self.run_info()
        assert run is not None  # just written
        stored_cutoff, stored_count = run
        if stored_count != shard_count:
            raise StoreError(
                f"this target holds a migration run with --shards {stored_count}; resume it with the same "
                f"sharding, or migrate into an empty target"
            )
        return str(stored_cutoff)

    def run_info(self) -> tuple[str, int] | None:
        try:
            row = (
                self._connect(read_only=False)
                .execute("SELECT cutoff, shard_count FROM migration_runs")
                .fetchone()
            )
        except sqlite3.OperationalError:  # no such table: nothing has run
            return None
        return None if row is None else (str(row["cutoff"]), int(row["shard_count"]))

    def load_checkpoint(self, shard: Shard) -> Checkpoint | None:
        row = (
            self._connect(read_only=False)
            .execute(
                "SELECT * FROM migration_checkpoints WHERE shard_index = ? AND shard_count = ?",
                (shard.index, shard.count),
            )
            .fetchone()
        )
        if row is None:
            return None
        return Checkpoint.from_row(shard, row)

    def start_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        self._write(
            [
                (
                    "INSERT OR IGNORE INTO migration_checkpoints (shard_index, shard_count, cutoff, total, last_id,"
                    " migrated, failed, checksum, finished, updated_at) VALUES (?, ?, ?, ?, NULL, 0, 0, ?, 0, ?)",
                    (
                        checkpoint.shard.index,
                        checkpoint.shard.count,
                        checkpoint.cutoff,
                        checkpoint.total,
                        f"{0:016x}",
                        _now(),
                    ),
                )
            ]
        )
        stored = self.load_checkpoint(checkpoint.shard)
        assert stored is not None
        return stored

    def commit_batch(
        self,
        units: Sequence[tuple[Any, ...]],
        failures: Sequence[Failure],
        checkpoint: Checkpoint,
        progress: Progress,
        resolved: Sequence[str] = (),
    ) -> None:
        with self._transaction() as conn:
            conn.executemany(
                f"INSERT INTO hierarchical_units ({', '.join(UNIT_COLUMNS)}) VALUES ({', '.join('?' * len(UNIT_COLUMNS))})",
                units,
            )
            conn.executemany(
                "INSERT INTO migration_failures (neuron_id, validator, reason, shard) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (neuron_id) DO UPDATE SET validator = excluded.validator, reason = excluded.reason",
                [(f["neuron_id"], f["validator"], f["reason"], str(checkpoint.shard)) for f in failures],
            )
            conn.executemany(
                "DELETE FROM migration_failures WHERE neuron_id = ?", [(neuron_id,) for neuron_id in resolved]
            )
            self._update_checkpoint(conn, checkpoint)
            self._upsert_progress(conn, progress)

    def finish(self, checkpoint: Checkpoint, progress: Progress) -> None:
        with self._transaction() as conn:
            self._update_checkpoint(conn, checkpoint)
            self._upsert_progress(conn, progress)

    def save_progress(self, progress: Progress) -> None:
        with self._transaction() as conn:
            self._upsert_progress(conn, progress)

    @staticmethod
    def _update_checkpoint(conn: sqlite3.Connection, cp: Checkpoint) -> None:
        conn.execute(
            "UPDATE migration_checkpoints SET last_id = ?, migrated = ?, failed = ?, checksum = ?, finished = ?,"
            " updated_at = ? WHERE shard_index = ? AND shard_count = ?",
            (
                cp.last_id,
                cp.migrated,
                cp.failed,
                f"{cp.checksum:016x}",
                int(cp.finished),
                _now(),
                cp.shard.index,
                cp.shard.count,
            ),
        )

    @staticmethod
    def _upsert_progress(conn: sqlite3.Connection, p: Progress) -> None:
        conn.execute(
            "INSERT INTO migration_progress (shard, total, migrated, failed, rate, eta_seconds, state, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (shard) DO UPDATE SET total = excluded.total,"
            " migrated = excluded.migrated, failed = excluded.failed, rate = excluded.rate,"
            " eta_seconds = excluded.eta_seconds, state = excluded.state, updated_at = excluded.updated_at",
            (str(p.shard), p.total, p.migrated, p.failed, p.rate, p.eta_seconds, p.state, _now()),
        )

    def read_units(self, shard: Shard, after: str | None, limit: int) -> list[dict[str, Any]]:
        where, params = _range("unit_id", shard, after)
        sql = (
            f"SELECT {', '.join(UNIT_COLUMNS)} FROM hierarchical_units WHERE {where} ORDER BY unit_id LIMIT ?"
        )
        return self._dicts(self._connect(read_only=False), sql, [*params, limit], UNIT_COLUMNS)

    def failed_ids(self, shard: Shard) -> set[str]:
        rows = self._connect(read_only=False).execute("SELECT neuron_id FROM migration_failures")
        return {row["neuron_id"] for row in rows if shard.owns(row["neuron_id"])}

    def failed_ids_page(self, shard: Shard, after: str | None, limit: int) -> list[str]:
        sql = "SELECT neuron_id FROM migration_failures WHERE shard = ?"
        params: list[Any] = [str(shard)]
        if after is not None:
            sql, params = f"{sql} AND neuron_id > ?", [*params, after]
        rows = self._connect(read_only=False).execute(f"{sql} ORDER BY neuron_id LIMIT ?", [*params, limit])
        return [row["neuron_id"] for row in rows]

    def save_verification(self, v: Verification) -> None:
        self._write(
            [
                (
                    "INSERT INTO migration_verifications (scope, passed, source_count, target_count, failed_count,"
                    " source_checksum, target_checksum, problems, verified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (scope) DO UPDATE SET passed = excluded.passed,"
                    " source_count = excluded.source_count, target_count = excluded.target_count,"
                    " failed_count = excluded.failed_count, source_checksum = excluded.source_checksum,"
                    " target_checksum = excluded.target_checksum, problems = excluded.problems,"
                    " verified_at = excluded.verified_at",
                    (
                        v.scope,
                        int(v.passed),
                        v.source_count,
                        v.target_count,
                        v.failed_count,
                        f"{v.source_checksum:016x}",
                        f"{v.target_checksum:016x}",
                        "\n".join(v.problems),
                        _now(),
                    ),
                )
            ]
        )

    def read_report(self, sample: int) -> RunReport | None:
        if not self.path.exists():
            return None
        try:
            conn = self._connect(read_only=True)
            run = conn.execute("SELECT cutoff, shard_count FROM migration_runs").fetchone()
            if run is None:
                return None
            shards = conn.execute("SELECT * FROM migration_progress ORDER BY shard").fetchall()
            verifications = conn.execute("SELECT scope, passed, problems FROM migration_verifications")
            checks = verifications.fetchall()
            failed = conn.execute("SELECT count(*) AS n FROM migration_failures").fetchone()
            first = conn.execute(
                "SELECT neuron_id, validator, reason FROM migration_failures ORDER BY neuron_id LIMIT ?",
                (sample,),
            ).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):  # the workers have not created the bookkeeping yet
                return None
            raise StoreError(f"SQLite database {self.path}: {error}") from error
        except sqlite3.Error as error:
            raise StoreError(f"SQLite database {self.path}: {error}") from error
        return RunReport.from_rows(run, shards, checks, int(failed["n"]), first)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    """Rows as plain dicts: ``in`` and ``get`` mean what the converter expects (sqlite3.Row's do not)."""
    return dict(zip([column[0] for column in cursor.description], row, strict=True))


def _write_error(path: Path, error: sqlite3.Error) -> StoreError:
    text = str(error)
    if "readonly" in text or "unable to open" in text or "permission" in text.lower():
        return StoreError(
            f"cannot write to SQLite database {path}: {text} (check file and directory permissions)"
        )
    return StoreError(f"SQLite database {path}: {text}")
