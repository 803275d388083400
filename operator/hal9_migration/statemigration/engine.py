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

import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .fingerprint import combine
from .pipeline import migrate_row
from .processes import POOL_MIN_BATCHES, helper_pool, peak_rss_kib
from .progress import Reporter
from .rows import Failure, is_uuid
from .shards import Shard
from .stores.base import Checkpoint, Progress, Store, Verification
from .verify import verify_shard


@dataclass(frozen=True)
class Converted:
    """One batch converted: target rows, failures, the sum of the rows' fingerprints, and the peak
    RSS of the process that converted it (a converter process reports its own)."""

    units: list[tuple[object, ...]]
    failures: list[Failure]
    checksum: int
    pid: int
    peak_rss_kib: int


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
    converters: int = 1,
) -> ShardResult:
    """Migrate the shard from its checkpoint, then verify it.

    ``converters`` > 1 converts batches in that many processes while this one reads and commits
    (a shard alone then uses more than one core); order and exactly-once are unchanged.
    """
    source.check_source_schema()
    target.ensure_target_schema()
    cutoff = target.begin_run(source.source_cutoff() or "", shard.count)
    checkpoint = target.load_checkpoint(shard) or target.start_checkpoint(
        Checkpoint(shard=shard, cutoff=cutoff, total=source.count_source(shard, cutoff))
    )
    started = clock()
    converter_peaks: dict[int, int] = {}  # peak RSS of each helper process, by pid
    verifier_peaks: dict[int, int] = {}
    if checkpoint.finished:
        reporter.log("already-finished", _progress(checkpoint, 0.0, "Finished"))
    else:
        done = checkpoint.migrated + checkpoint.failed
        reporter.log("start" if done == 0 else "resume", _progress(checkpoint, 0.0, "Running"))
    checkpoint = retry_failures(source, target, checkpoint, batch_size, reporter)
    done_at_start = checkpoint.migrated + checkpoint.failed
    if not checkpoint.finished:
        left = checkpoint.total - checkpoint.migrated - checkpoint.failed
        checkpoint = _migrate_batches(
            source,
            target,
            checkpoint,
            batch_size,
            reporter,
            clock,
            started,
            done_at_start,
            converters if left >= POOL_MIN_BATCHES * batch_size else 1,
            converter_peaks,
        )
    seconds = clock() - started
    verify_started = clock()
    verification = verify_shard(source, target, shard, cutoff, converters, verifier_peaks)
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
        converters=len(converter_peaks),
        # the whole process tree at its fullest (the two pools do not overlap in time), and its parts
        peak_rss_kib=peak_rss_kib() + max(sum(converter_peaks.values()), sum(verifier_peaks.values())),
        worker_peak_rss_kib=peak_rss_kib(),
        converters_peak_rss_kib=sorted(converter_peaks.values()),
        verifiers_peak_rss_kib=sorted(verifier_peaks.values()),
    )
    return ShardResult(checkpoint, verification, newer, seconds)


def _migrate_batches(
    source: Store,
    target: Store,
    checkpoint: Checkpoint,
    batch_size: int,
    reporter: Reporter,
    clock: Callable[[], float],
    started: float,
    done_at_start: int,
    converters: int,
    peaks: dict[int, int],
) -> Checkpoint:
    """The batch loop, from the checkpoint to the shard's end (each converter process's peak RSS
    goes into ``peaks`` by pid).

    Reading the next batch and committing the last one run on two threads; converting runs on a
    third, or in ``converters`` processes (one batch each at once: more in flight bought no speed,
    measured, and cost about 20 MiB a batch). Order and exactly-once are those of a plain loop:
    batches are committed in the order they were read, batch N+1 is handed to the writer only after
    batch N's commit returned, and each commit carries its own checkpoint. Memory is bounded by the
    batches in flight, whatever the shard's size.
    """
    shard, cutoff = checkpoint.shard, checkpoint.cutoff
    with (
        ThreadPoolExecutor(1, "hal9-read") as reader,
        ThreadPoolExecutor(1, "hal9-write") as writer,
        helper_pool(converters) as pool,
    ):
        next_rows = reader.submit(source.read_source, shard, checkpoint.last_id, cutoff, batch_size)
        in_flight: deque[tuple[Future[Converted], str]] = deque()  # each batch's conversion, last id
        committed: Future[None] | None = None
        read_all = False
        while True:
            while not read_all and len(in_flight) < converters:
                rows = next_rows.result()
                if not rows:
                    read_all = True
                    break
                last_id = str(rows[-1]["neuron_id"])
                next_rows = reader.submit(source.read_source, shard, last_id, cutoff, batch_size)
                migrated_at = datetime.now(UTC).isoformat()
                in_flight.append((pool.submit(convert_batch, rows, migrated_at), last_id))
                del rows
            if not in_flight:
                break
            converting, last_id = in_flight.popleft()
            batch = converting.result()
            if batch.pid != os.getpid():
                peaks[batch.pid] = batch.peak_rss_kib
            checkpoint = replace(
                checkpoint,
                last_id=last_id,
                migrated=checkpoint.migrated + len(batch.units),
                failed=checkpoint.failed + len(batch.failures),
                checksum=combine(checkpoint.checksum, batch.checksum),
            )
            progress = _progress(checkpoint, _rate(checkpoint, done_at_start, started, clock), "Running")
            if committed is not None:
                committed.result()  # the previous batch landed (or its error is raised here)
            committed = writer.submit(target.commit_batch, batch.units, batch.failures, checkpoint, progress)
            reporter.update(progress)
            del batch
        if committed is not None:
            committed.result()
    checkpoint = replace(checkpoint, finished=True)
    target.finish(
        checkpoint, _progress(checkpoint, _rate(checkpoint, done_at_start, started, clock), "Finished")
    )
    return checkpoint


def convert_batch(rows: Sequence[Mapping[str, Any]], migrated_at: str) -> Converted:
    """Each row migrated or failed, and the sum of the migrated rows' fingerprints. Runs in a
    converter process too (module level, so it pickles by name)."""
    units: list[tuple[object, ...]] = []
    failures: list[Failure] = []
    checksum = 0
    for raw in rows:
        migrated = migrate_row(raw, migrated_at)
        if isinstance(migrated, dict):  # a Failure
            failures.append(migrated)
            continue
        unit_row, fingerprint = migrated
        units.append(unit_row)
        checksum = combine(checksum, fingerprint)
    return Converted(units, failures, checksum, os.getpid(), peak_rss_kib())


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
        batch = convert_batch(rows, datetime.now(UTC).isoformat())
        units, failures = batch.units, batch.failures
        fixed = [str(unit[0]) for unit in units]
        checkpoint = replace(
            checkpoint,
            migrated=checkpoint.migrated + len(units),
            failed=checkpoint.failed - len(units) - len(missing),
            checksum=combine(checkpoint.checksum, batch.checksum),
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


def _rate(cp: Checkpoint, done_at_start: int, started: float, clock: Callable[[], float]) -> float:
    elapsed = clock() - started
    return (cp.migrated + cp.failed - done_at_start) / elapsed if elapsed > 0 else 0.0


def _progress(cp: Checkpoint, rate: float, state: str) -> Progress:
    remaining = max(cp.total - cp.migrated - cp.failed, 0)
    eta = remaining / rate if rate > 0 else None
    return Progress(cp.shard, cp.total, cp.migrated, cp.failed, rate, eta, state)
