"""The state-migration commands behind ``hal9-migration migrate-state | verify-state | seed-state``.

Database URLs carry passwords, so they are read from the environment when not given (``--source``
and ``--target`` are visible in ``ps``; the Job the operator creates passes them as environment
variables from Secrets), and are only ever printed redacted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from . import engine, seed
from .progress import Reporter
from .shards import Shard
from .stores.base import Store, StoreError, Verification
from .stores.factory import open_store

SOURCE_ENV = "HAL9_SOURCE_URL"
TARGET_ENV = "HAL9_TARGET_URL"
SEED_BATCH = 10_000


def migrate_state(
    source_url: str | None,
    target_url: str | None,
    batch_size: int,
    shard_index: int | None,
    shards: int,
    converters: int | None = None,
    out: TextIO = sys.stderr,
) -> int:
    """Exit code 0: shard migrated and verified; 1: verification failed; 2: bad input, nothing lost."""
    try:
        if batch_size < 1:
            raise StoreError(f"--batch-size must be at least 1, got {batch_size}")
        if converters is not None and converters < 1:
            raise StoreError(f"--converters must be at least 1, got {converters}")
        index = shard_index if shard_index is not None else int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
        shard = Shard(index, shards)
        source, target = _open(source_url, SOURCE_ENV, "source"), _open(target_url, TARGET_ENV, "target")
        try:
            result = engine.migrate_shard(
                source, target, shard, batch_size, Reporter(out), converters=converters or usable_cpus()
            )
        finally:
            source.close()
            target.close()
    except (StoreError, ValueError) as error:
        out.write(f"error: {error}\n")
        return 2
    return 0 if result.verification.passed else 1


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its CPU affinity, bounded by a container's CPU limit (the
    cgroup's CPU quota, v2 or v1), as Go's automaxprocs counts them. At least 1."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return count
    if quota in ("max", "-1"):
        return count
    try:
        return max(1, min(count, int(quota) // int(period)))
    except (ValueError, ZeroDivisionError):
        return count


def verify_state(source_url: str | None, target_url: str | None, out: TextIO = sys.stdout) -> int:
    """Recompute NoDataLoss for every shard of the target's run, store the results, print them."""
    try:
        source, target = _open(source_url, SOURCE_ENV, "source"), _open(target_url, TARGET_ENV, "target")
        try:
            source.check_source_schema()
            run = target.run_info()
            if run is None:
                raise StoreError("the target holds no migration run: run migrate-state first")
            cutoff, count = run
            per_shard = [engine.verify_shard(source, target, Shard(i, count), cutoff) for i in range(count)]
            overall = engine.merge(per_shard)
            for verification in [*per_shard, overall]:
                target.save_verification(verification)
                out.write(json.dumps(_summary(verification)) + "\n")
        finally:
            source.close()
            target.close()
    except (StoreError, ValueError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    return 0 if overall.passed else 1


def seed_state(url: str | None, count: int, seed_value: int, out: TextIO = sys.stderr) -> int:
    """Fill a flat store with ``count`` generated neuron states (test and benchmark data)."""
    try:
        store = _open(url, SOURCE_ENV, "--url")
        try:
            store.create_flat_table()
            rows = seed.generate(count, seed=seed_value)
            written = 0
            while batch := [row for _, row in zip(range(SEED_BATCH), rows, strict=False)]:
                written += store.insert_flat(batch)
        finally:
            store.close()
    except (StoreError, ValueError) as error:
        out.write(f"error: {error}\n")
        return 2
    out.write(json.dumps({"event": "seeded", "rows": written}) + "\n")
    return 0


def _open(url: str | None, env: str, what: str) -> Store:
    url = url or os.environ.get(env)
    if not url:
        raise StoreError(f"no {what} database: pass it or set ${env}")
    return open_store(url)


def _summary(v: Verification) -> dict[str, object]:
    return {
        "scope": v.scope,
        "passed": v.passed,
        "source_count": v.source_count,
        "target_count": v.target_count,
        "failed_count": v.failed_count,
        "source_checksum": f"{v.source_checksum:016x}",
        "target_checksum": f"{v.target_checksum:016x}",
        "problems": v.problems,
    }
