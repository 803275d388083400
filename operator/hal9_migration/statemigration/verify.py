"""NoDataLoss: recompute both sides of a shard from the stores and compare counts and checksums.

Independent of the worker's running figures: the source side is read again and fingerprinted with
the reference reading, the target side is read back from what was written (``units.decode_unit``).
The checksum is a sum, so pages can be fingerprinted in any order, in helper processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from .fingerprint import combine
from .pipeline import source_fingerprint, target_fingerprint
from .processes import POOL_MIN_BATCHES, helper_pool, peak_rss_kib
from .shards import Shard
from .stores.base import Store, Verification

__all__ = ["VERIFY_BATCH", "merge", "source_page", "target_page", "verify_shard"]

VERIFY_BATCH = 2000  # rows a page; 5000 verified no faster and held 140 MiB more with two helpers
PROBLEMS_KEPT = 20


@dataclass(frozen=True)
class PageSum:
    """A page's fingerprints summed, what could not be fingerprinted, and the peak RSS of the
    process that did it (a helper process reports its own)."""

    checksum: int = 0
    problems: list[str] = field(default_factory=list)
    pid: int = 0
    peak_rss_kib: int = 0


def source_page(rows: Sequence[Mapping[str, Any]]) -> PageSum:
    """Source rows' fingerprints (rows recorded as failed already left out). Runs in a helper too."""
    checksum = 0
    problems = []
    for raw in rows:
        fingerprint = source_fingerprint(raw)
        if fingerprint is None:
            problems.append(f"source row {raw['neuron_id']} cannot be decoded but is not recorded as failed")
        else:
            checksum = combine(checksum, fingerprint)
    return PageSum(checksum, problems, os.getpid(), peak_rss_kib())


def target_page(rows: Sequence[Mapping[str, Any]]) -> PageSum:
    """Target rows' fingerprints; a row that is not a unit is a problem. Runs in a helper too."""
    checksum = 0
    problems = []
    for row in rows:
        try:
            checksum = combine(checksum, target_fingerprint(row))
        except (ValueError, RecursionError) as error:
            problems.append(f"target row {row.get('unit_id')} is not a unit: {error}"[:300])
    return PageSum(checksum, problems, os.getpid(), peak_rss_kib())


def verify_shard(
    source: Store,
    target: Store,
    shard: Shard,
    cutoff: str,
    helpers: int = 1,
    peaks: dict[int, int] | None = None,
) -> Verification:
    """Recompute both sides from the stores, independently of the checkpoint's running figures.

    ``helpers`` > 1 fingerprints pages in that many processes while this one reads (a shard too
    small for it is verified in-process); their peak RSS goes into ``peaks`` by pid.
    """
    failed = target.failed_ids(shard)
    source_count = 0

    def source_pages() -> Iterator[Sequence[Mapping[str, Any]]]:
        nonlocal source_count
        after: str | None = None
        while rows := source.read_source(shard, after, cutoff, VERIFY_BATCH):
            source_count += len(rows)
            after = str(rows[-1]["neuron_id"])
            yield [raw for raw in rows if str(raw["neuron_id"]) not in failed]

    target_count = 0

    def target_pages() -> Iterator[Sequence[Mapping[str, Any]]]:
        nonlocal target_count
        after: str | None = None
        while rows := target.read_units(shard, after, VERIFY_BATCH):
            target_count += len(rows)
            after = str(rows[-1]["unit_id"])
            yield rows

    if helpers > 1 and source.count_source(shard, cutoff) < POOL_MIN_BATCHES * VERIFY_BATCH:
        helpers = 1
    with helper_pool(helpers) as pool:
        source_sum = _sum_pages(pool, helpers, source_pages(), source_page, peaks)
        target_sum = _sum_pages(pool, helpers, target_pages(), target_page, peaks)
    return Verification(
        scope=f"shard {shard}",
        source_count=source_count,
        target_count=target_count,
        failed_count=len(failed),
        source_checksum=source_sum.checksum,
        target_checksum=target_sum.checksum,
        problems=(source_sum.problems + target_sum.problems)[:PROBLEMS_KEPT],
    )


def _sum_pages(
    pool: Executor,
    helpers: int,
    pages: Iterator[Sequence[Mapping[str, Any]]],
    page_sum: Callable[[Sequence[Mapping[str, Any]]], PageSum],
    peaks: dict[int, int] | None,
) -> PageSum:
    """Every page's sum, added up, with at most ``helpers + 1`` pages in flight (memory stays flat).
    Problems keep the pages' order."""
    checksum = 0
    problems: list[str] = []
    in_flight: deque[Future[PageSum]] = deque()

    def add(done: PageSum) -> None:
        nonlocal checksum
        checksum = combine(checksum, done.checksum)
        if len(problems) < PROBLEMS_KEPT:
            problems.extend(done.problems[: PROBLEMS_KEPT - len(problems)])
        if peaks is not None and done.pid != os.getpid():
            peaks[done.pid] = max(peaks.get(done.pid, 0), done.peak_rss_kib)

    for page in pages:
        in_flight.append(pool.submit(page_sum, page))
        if len(in_flight) > helpers:
            add(in_flight.popleft().result())
    while in_flight:
        add(in_flight.popleft().result())
    return PageSum(checksum, problems)


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
