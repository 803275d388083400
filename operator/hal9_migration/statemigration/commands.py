"""The state-migration commands behind ``hal9-migration migrate-state | verify-state | seed-state``.

Database URLs carry passwords, so they are read from the environment when not given (``--source``
and ``--target`` are visible in ``ps``; the Job the operator creates passes them as environment
variables from Secrets), and are only ever printed redacted.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO

from . import engine, seed, verify
from .processes import usable_cpus
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
            helpers = usable_cpus()
            per_shard = [
                verify.verify_shard(source, target, Shard(i, count), cutoff, helpers) for i in range(count)
            ]
            overall = verify.merge(per_shard)
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
