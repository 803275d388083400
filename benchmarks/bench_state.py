"""`make bench-state`: state-migration throughput and memory against a raw-copy baseline.

For SQLite -> SQLite and PostgreSQL -> PostgreSQL, on the same seeded data (BENCH_ROWS neuron states,
64 weights and 8 connections each):
  - raw copy: the same bytes copied with no conversion (SQLite INSERT ... SELECT across attached
    files; PostgreSQL COPY TO STDOUT piped into COPY FROM STDIN of an identical table);
  - migrate-state with 1 shard (its converter processes: as many as this machine's CPUs), and with
    4 shards running at once (separate processes, each with CPUs // 4 converters, at least 1: what
    a CPU limit of a quarter of the machine gives each worker in a cluster);
  - peak memory (max RSS) of a 1-shard worker at BENCH_SMALL_ROWS and at BENCH_ROWS rows.
Rates are source rows per second of migration (verification is timed separately). Every figure is
measured in this run on this machine; the ratio compares with the baseline measured just before.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from tests.support import postgres as pg

from hal9_migration.statemigration import seed
from hal9_migration.statemigration.stores.factory import open_store

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
SMALL_ROWS = int(os.environ.get("BENCH_SMALL_ROWS", str(ROWS // 10)))
BATCH = int(os.environ.get("BENCH_BATCH", "2000"))
SEED_BATCH = 20_000


def seed_store(url: str, rows: int) -> float:
    store = open_store(url)
    store.create_flat_table()
    started = time.monotonic()
    generated = seed.generate(rows, seed=42)
    while batch := [row for _, row in zip(range(SEED_BATCH), generated, strict=False)]:
        store.insert_flat(batch)
    store.close()
    return time.monotonic() - started


def worker(source: str, target: str, shard: int, shards: int, converters: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "HAL9_SOURCE_URL": source,
        "HAL9_TARGET_URL": target,
        "JOB_COMPLETION_INDEX": str(shard),
    }
    command = [sys.executable, "-m", "hal9_migration.cli", "migrate-state", "--batch-size", str(BATCH)]
    command += ["--shards", str(shards), "--converters", str(converters)]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], int]:
    """The worker's final log event and its peak RSS in KiB.

    The peak is the one the worker reports: its own VmHWM plus its helper processes'. The rusage
    that wait4 gives also counts the memory of this process, which the worker was forked from (Linux
    keeps that figure across exec).
    """
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}):\n{err[-3000:]}")
    final = [json.loads(line) for line in err.splitlines() if line.startswith("{")][-1]
    return final, int(final.get("peak_rss_kib", usage.ru_maxrss))


def migrate(source: str, target: str, shards: int) -> dict[str, Any]:
    started = time.monotonic()
    converters = max(1, len(os.sched_getaffinity(0)) // shards)
    procs = [worker(source, target, i, shards, converters) for i in range(shards)]
    results = [finish(p) for p in procs]
    wall = time.monotonic() - started
    migrate_seconds = max(r[0]["migrate_seconds"] for r in results)
    return {
        "rows": sum(r[0]["migrated"] + r[0]["failed"] for r in results),
        "migrate_seconds": migrate_seconds,
        "verify_seconds": max(r[0]["verify_seconds"] for r in results),
        "wall_seconds": wall,
        "rate": sum(r[0]["migrated"] + r[0]["failed"] for r in results) / migrate_seconds,
        "max_rss_kib": max(r[1] for r in results),
        "converters": converters,
        # of the first worker: its own peak, its converters', its verification helpers'
        "peak_parts_kib": {
            part: results[0][0].get(f"{part}_peak_rss_kib") for part in ("worker", "converters", "verifiers")
        },
    }


def raw_copy_sqlite(source: Path, target: Path) -> float:
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"ATTACH DATABASE '{source}' AS src")
    schema = conn.execute("SELECT sql FROM src.sqlite_master WHERE name = 'neurons'").fetchone()[0]
    conn.execute(schema.replace("neurons", "raw_copy", 1))
    started = time.monotonic()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO raw_copy SELECT * FROM src.neurons")
    conn.execute("COMMIT")
    seconds = time.monotonic() - started
    conn.close()
    return seconds


def raw_copy_postgres(source: str, target: str) -> float:
    with psycopg.connect(source) as src, psycopg.connect(target) as dst:
        columns = src.execute(
            "SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', '"
            " ORDER BY attnum) FROM pg_attribute"
            " WHERE attrelid = 'neurons'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchone()[0]
        dst.execute(f"CREATE TABLE raw_copy ({columns}, PRIMARY KEY (neuron_id))")
        dst.commit()
        started = time.monotonic()
        with (
            src.cursor().copy("COPY neurons TO STDOUT") as out,
            dst.cursor().copy("COPY raw_copy FROM STDIN") as into,
        ):
            for chunk in out:
                into.write(chunk)
        dst.commit()
        return time.monotonic() - started


def bench_sqlite(workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"store": "SQLite -> SQLite"}
    small, big = workdir / "flat-small.db", workdir / "flat.db"
    seed_store(f"sqlite:///{small}", SMALL_ROWS)
    result["seed_seconds"] = seed_store(f"sqlite:///{big}", ROWS)
    result["raw_copy_rate"] = ROWS / raw_copy_sqlite(big, workdir / "raw.db")
    (workdir / "raw.db").unlink()
    result["small"] = migrate(f"sqlite:///{small}", f"sqlite:///{workdir / 'small-target.db'}", 1)
    result["one_shard"] = migrate(f"sqlite:///{big}", f"sqlite:///{workdir / 'target-1.db'}", 1)
    (workdir / "target-1.db").unlink()
    result["four_shards"] = migrate(f"sqlite:///{big}", f"sqlite:///{workdir / 'target-4.db'}", 4)
    return result


def bench_postgres() -> dict[str, Any]:
    result: dict[str, Any] = {"store": "PostgreSQL -> PostgreSQL"}
    with pg.running() as server:
        small, big = server.create_database("flat_small"), server.create_database("flat")
        seed_store(small, SMALL_ROWS)
        result["seed_seconds"] = seed_store(big, ROWS)
        result["raw_copy_rate"] = ROWS / raw_copy_postgres(big, server.create_database("raw"))
        server.drop_database("raw")
        result["small"] = migrate(small, server.create_database("small_target"), 1)
        result["one_shard"] = migrate(big, server.create_database("target_1"), 1)
        server.drop_database("target_1")
        result["four_shards"] = migrate(big, server.create_database("target_4"), 4)
    return result


def report(r: dict[str, Any]) -> None:
    raw = r["raw_copy_rate"]
    print(f"\n{r['store']}: {ROWS:,} neuron states (64 weights, 8 connections), batch {BATCH}")
    print(f"  raw copy baseline          {raw:>10,.0f} rows/s")
    for key, label in (("one_shard", "migrate-state, 1 shard"), ("four_shards", "migrate-state, 4 shards")):
        m = r[key]
        print(
            f"  {label:<26} {m['rate']:>10,.0f} rows/s  ratio {m['rate'] / raw:.2f} x raw copy"
            f"  (migrate {m['migrate_seconds']:.1f} s, verify {m['verify_seconds']:.1f} s,"
            f" {m['converters']} converter{'s' if m['converters'] > 1 else ''} a shard)"
        )
    print(
        f"  peak memory, 1 shard       {r['small']['max_rss_kib'] / 1024:>6.1f} MiB at {SMALL_ROWS:,} rows, "
        f"{r['one_shard']['max_rss_kib'] / 1024:.1f} MiB at {ROWS:,} rows (with its converters)",
        flush=True,
    )


def main() -> None:
    print(
        f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}"
    )
    stores = os.environ.get("BENCH_STORES", "sqlite,postgres").split(",")
    for name in stores:
        workdir = Path(tempfile.mkdtemp(prefix="hal9-bench-", dir=os.environ.get("BENCH_DIR")))
        try:
            result = bench_sqlite(workdir) if name == "sqlite" else bench_postgres()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        report(result)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
