"""The worker: migrate one shard, checkpointed and exactly-once, then verify it (NoDataLoss).

Exactly-once rests on one rule: a batch of converted rows, its failures and the checkpoint that
moves past them commit in one transaction on the target. A worker killed at any moment resumes from
the last committed checkpoint; the batch it was writing either landed with its checkpoint or not at
all. The target's primary key would refuse a second copy of a row anyway.

What a run covers: the source rows created at or before the run's cutoff — the newest
``created_at`` when the run first started, kept in the target so every shard and every resume uses
the same one. Rows added later are not half-migrated: they are reported, and a new run into a fresh
target (or a later issue's incremental run) covers them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import cast

from . import convert
from .progress import Reporter
from .rows import Failure, FlatNeuron
from .shards import Shard
from .stores.base import Checkpoint, Progress, Store, Verification

VERIFY_BATCH = 5000


@dataclass
class ShardResult:
    checkpoint: Checkpoint
    verification: Verification
    newer_rows: int  # source rows created after the run's cutoff, not covered by this run
    seconds: float  # time spent migrating (not verifying) in this invocation


def migrate_shard(
    source: Store,
    target: Store,
    shard: Shard,
    batch_size: int,
    reporter: Reporter,
    clock: Callable[[], float] = time.monotonic,
) -> ShardResult:
    source.check_source_schema()
    target.ensure_target_schema()
    cutoff = target.begin_run(source.source_cutoff() or "", shard.count)
    checkpoint = target.load_checkpoint(shard) or target.start_checkpoint(
        Checkpoint(shard=shard, cutoff=cutoff, total=source.count_source(shard, cutoff))
    )
    started, done_at_start = clock(), checkpoint.migrated + checkpoint.failed
    if checkpoint.finished:
        reporter.log("already-finished", _progress(checkpoint, 0.0, "Finished"))
    else:
        reporter.log("start" if done_at_start == 0 else "resume", _progress(checkpoint, 0.0, "Running"))
    while not checkpoint.finished:
        rows = source.read_source(shard, checkpoint.last_id, cutoff, batch_size)
        if not rows:
            checkpoint = replace(checkpoint, finished=True)
            rate = _rate(checkpoint, done_at_start, started, clock)
            target.finish(checkpoint, _progress(checkpoint, rate, "Finished"))
            break
        units: list[tuple[object, ...]] = []
        failures: list[Failure] = []
        checksum = checkpoint.checksum
        migrated_at = datetime.now(UTC).isoformat()
        for raw in rows:
            migrated = convert.migrate_row(raw, migrated_at)
            if isinstance(migrated, dict):  # a Failure
                failures.append(migrated)
                continue
            unit_row, fingerprint = migrated
            units.append(unit_row)
            checksum = convert.combine(checksum, fingerprint)
        checkpoint = replace(
            checkpoint,
            last_id=str(rows[-1]["neuron_id"]),
            migrated=checkpoint.migrated + len(units),
            failed=checkpoint.failed + len(failures),
            checksum=checksum,
        )
        progress = _progress(checkpoint, _rate(checkpoint, done_at_start, started, clock), "Running")
        target.commit_batch(units, failures, checkpoint, progress)
        reporter.update(progress)
    seconds = clock() - started
    verify_started = clock()
    verification = verify_shard(source, target, shard, cutoff)
    verify_seconds = clock() - verify_started
    target.save_verification(verification)
    state = "Verified" if verification.passed else "VerificationFailed"
    final = _progress(checkpoint, _rate(checkpoint, done_at_start, started, clock), state)
    target.save_progress(final)
    reporter.update(final, final=True)
    newer = source.count_source(shard, None) - source.count_source(shard, cutoff)
    reporter.log(
        "verified" if verification.passed else "verification-failed",
        final,
        cutoff=cutoff,
        newer_rows_not_covered=newer,
        problems=verification.problems,
        migrate_seconds=round(seconds, 3),
        verify_seconds=round(verify_seconds, 3),
    )
    return ShardResult(checkpoint, verification, newer, seconds)


def verify_shard(source: Store, target: Store, shard: Shard, cutoff: str) -> Verification:
    """Recompute both sides from the stores, independently of the checkpoint's running figures."""
    failed = target.failed_ids(shard)
    problems: list[str] = []
    source_count = source_checksum = 0
    after: str | None = None
    while rows := source.read_source(shard, after, cutoff, VERIFY_BATCH):
        for raw in rows:
            source_count += 1
            neuron_id = str(raw["neuron_id"])
            if neuron_id in failed:
                continue
            decoded = convert.decode(raw)
            if convert.is_failure(decoded):
                problems.append(f"source row {neuron_id} cannot be decoded but is not recorded as failed")
                continue
            source_checksum = convert.combine(
                source_checksum, convert.fingerprint_neuron(cast(FlatNeuron, decoded))
            )
        after = str(rows[-1]["neuron_id"])
    target_count = target_checksum = 0
    after = None
    while units := target.read_units(shard, after, VERIFY_BATCH):
        for row in units:
            target_count += 1
            target_checksum = convert.combine(
                target_checksum, convert.fingerprint_unit(convert.decode_unit(row))
            )
        after = str(units[-1]["unit_id"])
    return Verification(
        scope=f"shard {shard}",
        source_count=source_count,
        target_count=target_count,
        failed_count=len(failed),
        source_checksum=source_checksum,
        target_checksum=target_checksum,
        problems=problems[:20],
    )


def merge(verifications: list[Verification]) -> Verification:
    """The overall result from per-shard ones (shards partition the ids, so figures add up)."""
    total = Verification("overall", 0, 0, 0, 0, 0)
    for v in verifications:
        total.source_count += v.source_count
        total.target_count += v.target_count
        total.failed_count += v.failed_count
        total.source_checksum = convert.combine(total.source_checksum, v.source_checksum)
        total.target_checksum = convert.combine(total.target_checksum, v.target_checksum)
        total.problems += [f"{v.scope}: {p}" for p in v.problems]
        if not v.passed and not v.problems:
            total.problems.append(f"{v.scope}: counts or checksums differ")
    return total


def _rate(cp: Checkpoint, done_at_start: int, started: float, clock: Callable[[], float]) -> float:
    elapsed = clock() - started
    return (cp.migrated + cp.failed - done_at_start) / elapsed if elapsed > 0 else 0.0


def _progress(cp: Checkpoint, rate: float, state: str) -> Progress:
    remaining = max(cp.total - cp.migrated - cp.failed, 0)
    eta = remaining / rate if rate > 0 else None
    return Progress(cp.shard, cp.total, cp.migrated, cp.failed, rate, eta, state)
