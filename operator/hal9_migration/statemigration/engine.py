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

import resource
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .fingerprint import combine
from .pipeline import migrate_row, source_fingerprint, target_fingerprint
from .progress import Reporter
from .rows import Failure, is_uuid
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
    started = clock()
    if checkpoint.finished:
        reporter.log("already-finished", _progress(checkpoint, 0.0, "Finished"))
    else:
        done = checkpoint.migrated + checkpoint.failed
        reporter.log("start" if done == 0 else "resume", _progress(checkpoint, 0.0, "Running"))
    checkpoint = retry_failures(source, target, checkpoint, batch_size, reporter)
    done_at_start = checkpoint.migrated + checkpoint.failed
    if not checkpoint.finished:
        checkpoint = _migrate_batches(
            source, target, checkpoint, batch_size, reporter, clock, started, done_at_start
        )
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
        peak_rss_kib=peak_rss_kib(),
    )
    return ShardResult(checkpoint, verification, newer, seconds)


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB since it started its program.

    VmHWM, where Linux has it: getrusage's maxrss also counts the memory of the parent a process
    was forked from (it survives the exec), which is not the worker's.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _migrate_batches(
    source: Store,
    target: Store,
    checkpoint: Checkpoint,
    batch_size: int,
    reporter: Reporter,
    clock: Callable[[], float],
    started: float,
    done_at_start: int,
) -> Checkpoint:
    """The batch loop, from the checkpoint to the shard's end.

    Reading the next batch and committing the last one run on two threads while this one converts:
    the drivers do their work without the GIL, so the stores' share of a row's time overlaps the
    conversion's. Order and exactly-once are those of a plain loop: batch N+1 is handed to the
    writer only after batch N's commit returned, and each commit carries its own checkpoint; at
    most two batches are held at once (the one read ahead and the one converted).
    """
    shard, cutoff = checkpoint.shard, checkpoint.cutoff
    with ThreadPoolExecutor(1, "hal9-read") as reader, ThreadPoolExecutor(1, "hal9-write") as writer:
        next_rows = reader.submit(source.read_source, shard, checkpoint.last_id, cutoff, batch_size)
        committed: Future[None] | None = None
        while rows := next_rows.result():
            next_rows = reader.submit(
                source.read_source, shard, str(rows[-1]["neuron_id"]), cutoff, batch_size
            )
            units, failures, checksum = _convert(rows, checkpoint.checksum)
            checkpoint = replace(
                checkpoint,
                last_id=str(rows[-1]["neuron_id"]),
                migrated=checkpoint.migrated + len(units),
                failed=checkpoint.failed + len(failures),
                checksum=checksum,
            )
            progress = _progress(checkpoint, _rate(checkpoint, done_at_start, started, clock), "Running")
            if committed is not None:
                committed.result()  # the previous batch landed (or its error is raised here)
            committed = writer.submit(target.commit_batch, units, failures, checkpoint, progress)
            reporter.update(progress)
            del rows, units, failures
        if committed is not None:
            committed.result()
    checkpoint = replace(checkpoint, finished=True)
    target.finish(
        checkpoint, _progress(checkpoint, _rate(checkpoint, done_at_start, started, clock), "Finished")
    )
    return checkpoint


def _convert(
    rows: Sequence[Mapping[str, Any]], checksum: int
) -> tuple[list[tuple[object, ...]], list[Failure], int]:
    """Each row migrated or failed; the checksum with the migrated rows' fingerprints added."""
    units: list[tuple[object, ...]] = []
    failures: list[Failure] = []
    migrated_at = datetime.now(UTC).isoformat()
    for raw in rows:
        migrated = migrate_row(raw, migrated_at)
        if isinstance(migrated, dict):  # a Failure
            failures.append(migrated)
            continue
        unit_row, fingerprint = migrated
        units.append(unit_row)
        checksum = combine(checksum, fingerprint)
    return units, failures, checksum


def retry_failures(
    source: Store, target: Store, checkpoint: Checkpoint, batch_size: int, reporter: Reporter
) -> Checkpoint:
    """Re-attempt the rows the shard recorded as failed, as the source holds them now.

    A row that now converts is written and leaves ``migration_failures``; one that still fails
    keeps its record with the new reason; one the source no longer holds at or before the cutoff
    (deleted, or its created_at moved on) leaves the record, since the run no longer covers it. Each
    page commits in one transaction with the checkpoint's counts and checksum, so a worker killed
    here resumes exactly once. Logs ``retried-failures`` when the shard had any.
    """
    shard = checkpoint.shard
    state = "Finished" if checkpoint.finished else "Running"
    retried = migrated = still_failing = gone = 0
    after: str | None = None
    while ids := target.failed_ids_page(shard, after, batch_size):
        after = ids[-1]
        found = {str(raw["neuron_id"]): raw for raw in source.read_source_ids(ids, checkpoint.cutoff)}
        rows = [found[neuron_id] for neuron_id in ids if neuron_id in found]
        missing = [neuron_id for neuron_id in ids if neuron_id not in found and is_uuid(neuron_id)]
        units, failures, checksum = _convert(rows, checkpoint.checksum)
        fixed = [str(unit[0]) for unit in units]
        checkpoint = replace(
            checkpoint,
            migrated=checkpoint.migrated + len(units),
            failed=checkpoint.failed - len(units) - len(missing),
            checksum=checksum,
        )
        target.commit_batch(
            units, failures, checkpoint, _progress(checkpoint, 0.0, state), resolved=fixed + missing
        )
        retried += len(ids)
        migrated += len(units)
        still_failing += len(failures)
        gone += len(missing)
    if retried:
        reporter.log(
            "retried-failures",
            _progress(checkpoint, 0.0, state),
            retried=retried,
            now_migrated=migrated,
            still_failing=still_failing,
            gone_from_source=gone,
        )
    return checkpoint


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
            fingerprint = source_fingerprint(raw)
            if fingerprint is None:
                problems.append(f"source row {neuron_id} cannot be decoded but is not recorded as failed")
                continue
            source_checksum = combine(source_checksum, fingerprint)
        after = str(rows[-1]["neuron_id"])
    target_count = target_checksum = 0
    after = None
    while units := target.read_units(shard, after, VERIFY_BATCH):
        for row in units:
            target_count += 1
            try:
                target_checksum = combine(target_checksum, target_fingerprint(row))
            except (ValueError, RecursionError) as error:
                problems.append(f"target row {row.get('unit_id')} is not a unit: {error}"[:300])
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
        total.source_checksum = combine(total.source_checksum, v.source_checksum)
        total.target_checksum = combine(total.target_checksum, v.target_checksum)
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
