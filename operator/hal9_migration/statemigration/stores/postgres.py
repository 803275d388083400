"""PostgreSQL, for production: ``postgresql://USER:PASSWORD@HOST:PORT/DB``.

Converted rows go in with COPY inside the same transaction as their checkpoint. The hierarchical
JSON columns are ``json`` (validated, stored verbatim), not ``jsonb``: jsonb re-encodes numbers as
``numeric``, which has no negative zero, and weights must survive bit-exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..rows import FLAT_COLUMNS, UNIT_COLUMNS, Failure, is_uuid
from ..shards import Shard
from .base import (
    Checkpoint,
    Progress,
    RunReport,
    SchemaError,
    StoreError,
    Verification,
    redact,
    scrub,
)

CONNECT_TIMEOUT_SECONDS = 10
SCHEMA_LOCK_KEY = 0x4A19_5C4E  # any constant unique to this program: "hal9 schema"

FLAT_SCHEMA = """
CREATE TABLE IF NOT EXISTS neurons (
    neuron_id uuid PRIMARY KEY,
    neuron_type text NOT NULL,
    activation double precision NOT NULL,
    weights text NOT NULL,
    biases text NOT NULL,
    learning_rate double precision NOT NULL,
    momentum double precision,
    connections text NOT NULL,
    memory text NOT NULL,
    context text NOT NULL,
    avg_response_time double precision NOT NULL,
    connection_count integer NOT NULL,
    is_async boolean NOT NULL,
    created_at text NOT NULL
);
CREATE INDEX IF NOT EXISTS neurons_created_at ON neurons (created_at);
"""

TARGET_SCHEMA = """
CREATE TABLE IF NOT EXISTS hierarchical_units (
    unit_id uuid PRIMARY KEY,
    layer text NOT NULL CHECK (layer IN ('L1', 'L2', 'L3', 'L4', 'L5')),
    cognitive_state json NOT NULL,
    learning_state json NOT NULL,
    connections json NOT NULL,
    metadata json NOT NULL
);
CREATE TABLE IF NOT EXISTS migration_runs (
    id integer PRIMARY KEY CHECK (id = 1),
    cutoff text NOT NULL,
    shard_count integer NOT NULL,
    started_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS migration_checkpoints (
    shard_index integer NOT NULL,
    shard_count integer NOT NULL,
    cutoff text NOT NULL,
    total bigint NOT NULL,
    last_id text,
    migrated bigint NOT NULL,
    failed bigint NOT NULL,
    checksum text NOT NULL,
    finished boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (shard_index, shard_count)
);
CREATE TABLE IF NOT EXISTS migration_failures (
    neuron_id text PRIMARY KEY,
    validator text NOT NULL,
    reason text NOT NULL,
    shard text NOT NULL
);
CREATE TABLE IF NOT EXISTS migration_progress (
    shard text PRIMARY KEY,
    total bigint NOT NULL,
    migrated bigint NOT NULL,
    failed bigint NOT NULL,
    rate double precision NOT NULL,
    eta_seconds double precision,
    state text NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS migration_verifications (
    scope text PRIMARY KEY,
    passed boolean NOT NULL,
    source_count bigint NOT NULL,
    target_count bigint NOT NULL,
    failed_count bigint NOT NULL,
    source_checksum text NOT NULL,
    target_checksum text NOT NULL,
    problems text NOT NULL,
    verified_at timestamptz NOT NULL
);
"""


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._id_type = "uuid"  # of the source's neuron_id; "text" sources compare in the C collation

    # --- connections ---------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None:
            try:
                self._conn = psycopg.connect(
                    self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS, row_factory=dict_row, autocommit=True
                )
                # Keyset pages must walk the primary key in order. Without fresh statistics (a table
                # just bulk-loaded) the planner may instead fetch the whole shard and sort it for
                # every page; in this session only, it may not.
                self._conn.execute("SET enable_seqscan = off")
                self._conn.execute("SET enable_bitmapscan = off")
            except psycopg.ProgrammingError as error:  # a URL libpq cannot parse
                raise StoreError(
                    f"malformed PostgreSQL URL {redact(self.url)}: {scrub(str(error), self.url)}"
                ) from None
            except psycopg.Error as error:
                raise StoreError(
                    f"cannot connect to PostgreSQL at {redact(self.url)}: {scrub(str(error), self.url).strip()}"
                ) from None
        return self._conn

    def _fail(self, error: psycopg.Error) -> StoreError:
        text = scrub(str(error), self.url).strip()
        if isinstance(error, psycopg.errors.InsufficientPrivilege):
            return StoreError(f"cannot write to PostgreSQL database {redact(self.url)}: {text}")
        return StoreError(f"PostgreSQL database {redact(self.url)}: {text}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _key(self, column: str) -> sql.Composable:
        # Qualified with its table: the SELECT lists also name an output column ``neuron_id`` (cast
        # to text), and an unqualified ORDER BY would sort by that cast instead of walking the
        # primary key index — a full scan and sort for every page.
        table = "neurons" if column == "neuron_id" else "hierarchical_units"
        key = sql.Identifier(table, column)
        if self._id_type == "uuid" or column == "unit_id":
            return key
        return sql.SQL('{} COLLATE "C"').format(key)

    def _range(self, column: str, shard: Shard, after: str | None) -> tuple[sql.Composable, list[Any]]:
        key = self._key(column)
        as_uuid = self._id_type == "uuid" or column == "unit_id"  # the target's unit_id is always uuid
        cast = sql.SQL("::uuid") if as_uuid else sql.SQL("")
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        if after is not None:
            clauses.append(sql.SQL("{} > %s{}").format(key, cast))
            params.append(after)
        elif shard.lo is not None:
            clauses.append(sql.SQL("{} >= %s{}").format(key, cast))
            params.append(shard.lo)
        if shard.hi is not None:
            clauses.append(sql.SQL("{} < %s{}").format(key, cast))
            params.append(shard.hi)
        return (sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true")), params

    # --- source ------------------------------------------------------------------------------------

    def create_flat_table(self) -> None:
        try:
            self._connect().execute(FLAT_SCHEMA)
        except psycopg.Error as error:
            raise self._fail(error) from None

    def insert_flat(self, rows: Iterable[Sequence[Any]]) -> int:
        """Load flat rows (``FLAT_COLUMNS`` order) with COPY; for seeding test and benchmark data."""
        copy_sql = sql.SQL("COPY neurons ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, FLAT_COLUMNS))
        )
        count = 0
        try:
            with self._connect().transaction(), self._connect().cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        except psycopg.Error as error:
            raise self._fail(error) from None
        return count

    def check_source_schema(self) -> None:
        rows = (
            self._connect()
            .execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'neurons' AND table_schema = current_schema()"
            )
            .fetchall()
        )
        if not rows:
            raise SchemaError(f"{redact(self.url)} has no table 'neurons': it is not a flat HAL9 store")
        types = {row["column_name"]: row["data_type"] for row in rows}
        missing = [c for c in FLAT_COLUMNS if c not in types]
        if missing:
            raise SchemaError(f"source table 'neurons' lacks column(s): {', '.join(missing)}")
        self._id_type = "uuid" if types["neuron_id"] == "uuid" else "text"

    def source_cutoff(self) -> str | None:
        row = self._connect().execute("SELECT max(created_at)::text AS cutoff FROM neurons").fetchone()
        return None if row is None else row["cutoff"]

    # The cutoff compares in the C collation: byte order is the right order for ISO 8601 text, and a
    # collation no index has keeps the planner on the primary key (ordered, LIMIT-friendly) instead
    # of a created_at index that would make every keyset page scan and sort the whole shard.

    def count_source(self, shard: Shard, cutoff: str | None) -> int:
        where, params = self._range("neuron_id", shard, None)
        if cutoff is not None:
            where, params = (
                sql.SQL('{} AND created_at::text COLLATE "C" <= %s').format(where),
                [*params, cutoff],
            )
        row = (
            self._connect()
            .execute(sql.SQL("SELECT count(*) AS n FROM neurons WHERE {}").format(where), params)
            .fetchone()
        )
        return int(row["n"]) if row else 0

    def read_source(self, shard: Shard, after: str | None, cutoff: str, limit: int) -> list[dict[str, Any]]:
        where, params = self._range("neuron_id", shard, after)
        columns = sql.SQL(", ").join(
            sql.SQL("{}::text AS {}").format(sql.Identifier(c), sql.Identifier(c))
            if c in ("neuron_id", "created_at")
            else sql.Identifier(c)
            for c in FLAT_COLUMNS
        )
        query = sql.SQL(
            'SELECT {} FROM neurons WHERE {} AND created_at::text COLLATE "C" <= %s ORDER BY {} LIMIT %s'
        ).format(columns, where, self._key("neuron_id"))
        return self._connect().execute(query, [*params, cutoff, limit]).fetchall()

    def read_source_ids(self, ids: Sequence[str], cutoff: str) -> list[dict[str, Any]]:
        if self._id_type == "uuid":  # a recorded id that is no UUID cannot be in a uuid column
            ids = [neuron_id for neuron_id in ids if is_uuid(neuron_id)]
        if not ids:
            return []
        columns = sql.SQL(", ").join(
            sql.SQL("{}::text AS {}").format(sql.Identifier(c), sql.Identifier(c))
            if c in ("neuron_id", "created_at")
            else sql.Identifier(c)
            for c in FLAT_COLUMNS
        )
        query = sql.SQL(
            'SELECT {} FROM neurons WHERE neurons.neuron_id = ANY(%s::{}[]) AND created_at::text COLLATE "C" <= %s'
        ).format(columns, sql.SQL(self._id_type))
        try:
            return self._connect().execute(query, [list(ids), cutoff]).fetchall()
        except psycopg.Error as error:
            raise self._fail(error) from None

    # --- target ------------------------------------------------------------------------------------

    def ensure_target_schema(self) -> None:
        # Concurrent CREATE ... IF NOT EXISTS can still collide in PostgreSQL's catalog; shards that
        # start together take turns under a transaction-scoped advisory lock.
        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                conn.execute(TARGET_SCHEMA)
        except psycopg.Error as error:
            raise self._fail(error) from None

    def begin_run(self, cutoff: str, shard_count: int) -> str:
        conn = self._connect()
        try:
            conn.execute(
                "INSERT INTO migration_runs (id, cutoff, shard_count, started_at) VALUES (1, %s, %s, now())"
                " ON CONFLICT (id) DO NOTHING",
                (cutoff, shard_count),
            )
            row = conn.execute("SELECT cutoff, shard_count FROM migration_runs WHERE id = 1").fetchone()
        except psycopg.Error as error:
            raise self._fail(error) from None
        assert row is not None
        if row["shard_count"] != shard_count:
            raise StoreError(
                f"this target holds a migration run with --shards {row['shard_count']}; resume it with the "
                f"same sharding, or migrate into an empty target"
            )
        return str(row["cutoff"])

    def run_info(self) -> tuple[str, int] | None:
        try:
            row = self._connect().execute("SELECT cutoff, shard_count FROM migration_runs").fetchone()
        except psycopg.errors.UndefinedTable:  # nothing has run
            return None
        return None if row is None else (str(row["cutoff"]), int(row["shard_count"]))

    def load_checkpoint(self, shard: Shard) -> Checkpoint | None:
        row = (
            self._connect()
            .execute(
                "SELECT * FROM migration_checkpoints WHERE shard_index = %s AND shard_count = %s",
                (shard.index, shard.count),
            )
            .fetchone()
        )
        if row is None:
            return None
        return Checkpoint.from_row(shard, row)

    def start_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        try:
            self._connect().execute(
                "INSERT INTO migration_checkpoints (shard_index, shard_count, cutoff, total, last_id, migrated,"
                " failed, checksum, finished, updated_at) VALUES (%s, %s, %s, %s, NULL, 0, 0, %s, false, now())"
                " ON CONFLICT DO NOTHING",
                (
                    checkpoint.shard.index,
                    checkpoint.shard.count,
                    checkpoint.cutoff,
                    checkpoint.total,
                    f"{0:016x}",
                ),
            )
        except psycopg.Error as error:
            raise self._fail(error) from None
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
        conn = self._connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                if units:
                    copy_sql = sql.SQL("COPY hierarchical_units ({}) FROM STDIN").format(
                        sql.SQL(", ").join(map(sql.Identifier, UNIT_COLUMNS))
                    )
                    with cur.copy(copy_sql) as copy:
                        for unit in units:
                            copy.write_row(unit)
                if failures:
                    cur.executemany(
                        "INSERT INTO migration_failures (neuron_id, validator, reason, shard) VALUES (%s, %s, %s, %s)"
                        " ON CONFLICT (neuron_id) DO UPDATE SET validator = excluded.validator, reason = excluded.reason",
                        [
                            (f["neuron_id"], f["validator"], f["reason"], str(checkpoint.shard))
                            for f in failures
                        ],
                    )
                if resolved:
                    cur.execute("DELETE FROM migration_failures WHERE neuron_id = ANY(%s)", (list(resolved),))
                self._update_checkpoint(cur, checkpoint)
                self._upsert_progress(cur, progress)
        except psycopg.Error as error:
            raise self._fail(error) from None

    def finish(self, checkpoint: Checkpoint, progress: Progress) -> None:
        conn = self._connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                self._update_checkpoint(cur, checkpoint)
                self._upsert_progress(cur, progress)
        except psycopg.Error as error:
            raise self._fail(error) from None

    def save_progress(self, progress: Progress) -> None:
        try:
            with self._connect().cursor() as cur:
                self._upsert_progress(cur, progress)
        except psycopg.Error as error:
            raise self._fail(error) from None

    @staticmethod
    def _update_checkpoint(cur: psycopg.Cursor[dict[str, Any]], cp: Checkpoint) -> None:
        cur.execute(
            "UPDATE migration_checkpoints SET last_id = %s, migrated = %s, failed = %s, checksum = %s,"
            " finished = %s, updated_at = now() WHERE shard_index = %s AND shard_count = %s",
            (
                cp.last_id,
                cp.migrated,
                cp.failed,
                f"{cp.checksum:016x}",
                cp.finished,
                cp.shard.index,
                cp.shard.count,
            ),
        )

    @staticmethod
    def _upsert_progress(cur: psycopg.Cursor[dict[str, Any]], p: Progress) -> None:
        cur.execute(
            "INSERT INTO migration_progress (shard, total, migrated, failed, rate, eta_seconds, state, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (shard) DO UPDATE SET"
            " total = excluded.total, migrated = excluded.migrated, failed = excluded.failed,"
            " rate = excluded.rate, eta_seconds = excluded.eta_seconds, state = excluded.state,"
            " updated_at = excluded.updated_at",
            (str(p.shard), p.total, p.migrated, p.failed, p.rate, p.eta_seconds, p.state),
        )

    def read_units(self, shard: Shard, after: str | None, limit: int) -> list[dict[str, Any]]:
        where, params = self._range("unit_id", shard, after)
        columns = sql.SQL(", ").join(
            sql.SQL("{}::text AS {}").format(sql.Identifier(c), sql.Identifier(c)) for c in UNIT_COLUMNS
        )
        query = sql.SQL("SELECT {} FROM hierarchical_units WHERE {} ORDER BY {} LIMIT %s").format(
            columns, where, self._key("unit_id")
        )
        return self._connect().execute(query, [*params, limit]).fetchall()

    def failed_ids_page(self, shard: Shard, after: str | None, limit: int) -> list[str]:
        # In the C collation, so that the keyset and the order agree with Python's on any id.
        query = "SELECT neuron_id FROM migration_failures WHERE shard = %s"
        params: list[Any] = [str(shard)]
        if after is not None:
            query, params = f'{query} AND neuron_id COLLATE "C" > %s', [*params, after]
        rows = self._connect().execute(f'{query} ORDER BY neuron_id COLLATE "C" LIMIT %s', [*params, limit])
        return [row["neuron_id"] for row in rows.fetchall()]

    def failed_ids(self, shard: Shard) -> set[str]:
        rows = self._connect().execute("SELECT neuron_id FROM migration_failures").fetchall()
        return {row["neuron_id"] for row in rows if shard.owns(row["neuron_id"])}

    def save_verification(self, v: Verification) -> None:
        try:
            self._connect().execute(
                "INSERT INTO migration_verifications (scope, passed, source_count, target_count, failed_count,"
                " source_checksum, target_checksum, problems, verified_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (scope) DO UPDATE SET"
                " passed = excluded.passed, source_count = excluded.source_count,"
                " target_count = excluded.target_count, failed_count = excluded.failed_count,"
                " source_checksum = excluded.source_checksum, target_checksum = excluded.target_checksum,"
                " problems = excluded.problems, verified_at = excluded.verified_at",
                (
                    v.scope,
                    v.passed,
                    v.source_count,
                    v.target_count,
                    v.failed_count,
                    f"{v.source_checksum:016x}",
                    f"{v.target_checksum:016x}",
                    "\n".join(v.problems),
                ),
            )
        except psycopg.Error as error:
            raise self._fail(error) from None

    def read_report(self, sample: int) -> RunReport | None:
        try:
            conn = self._connect()
            table = conn.execute("SELECT to_regclass('migration_runs')::text AS t").fetchone()
            if table is None or table["t"] is None:  # the workers have not created the bookkeeping yet
                return None
            run = conn.execute("SELECT cutoff, shard_count FROM migration_runs").fetchone()
            if run is None:
                return None
            shards = conn.execute(
                "SELECT shard, total, migrated, failed, rate, eta_seconds, state, updated_at::text AS updated_at"
                " FROM migration_progress ORDER BY shard"
            ).fetchall()
            checks = conn.execute("SELECT scope, passed, problems FROM migration_verifications").fetchall()
            failed = conn.execute("SELECT count(*) AS n FROM migration_failures").fetchone()
            first = conn.execute(
                "SELECT neuron_id::text AS neuron_id, validator, reason FROM migration_failures"
                " ORDER BY neuron_id LIMIT %s",
                (sample,),
            ).fetchall()
        except psycopg.Error as error:
            raise self._fail(error) from None
        assert failed is not None
        return RunReport.from_rows(run, shards, checks, int(failed["n"]), first)
