"""The store seam: one small interface, one module per database (``factory.open_store`` picks one by URL).

A store plays either role. As the *source* it only reads the flat table ``neurons``. As the
*target* it owns the hierarchical table and the bookkeeping tables; every batch of converted rows
commits in one transaction together with its checkpoint, which is what makes the worker
exactly-once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from ..rows import Failure
from ..shards import Shard


class StoreError(Exception):
    """A problem with a store that a person must fix; the message names it and never a password."""


class SchemaError(StoreError):
    """The source is not a flat HAL9 store this worker understands."""


@dataclass
class Checkpoint:
    """Where a shard stands; committed with every batch."""

    shard: Shard
    cutoff: str  # the run covers source rows created at or before this
    total: int  # source rows in the shard at or before the cutoff, counted when the shard started
    last_id: str | None = None  # keyset cursor: the last source id handled
    migrated: int = 0
    failed: int = 0
    checksum: int = 0  # order-independent sum of the fingerprints of the migrated source rows
    finished: bool = False

    @classmethod
    def from_row(cls, shard: Shard, row: Mapping[str, Any]) -> Checkpoint:
        """From a ``migration_checkpoints`` row (the checksum is stored as 16 hex digits)."""
        return cls(
            shard=shard,
            cutoff=row["cutoff"],
            total=row["total"],
            last_id=row["last_id"],
            migrated=row["migrated"],
            failed=row["failed"],
            checksum=int(row["checksum"], 16),
            finished=bool(row["finished"]),
        )


@dataclass
class Verification:
    """NoDataLoss: source and target agree on what was migrated."""

    scope: str  # "shard 1/4" or "overall"
    source_count: int  # source rows covered by the run
    target_count: int  # rows in the target
    failed_count: int  # rows recorded as failed
    source_checksum: int  # over source rows not recorded as failed
    target_checksum: int
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            not self.problems
            and self.source_count == self.target_count + self.failed_count
            and self.source_checksum == self.target_checksum
        )


@dataclass
class Progress:
    shard: Shard
    total: int
    migrated: int
    failed: int
    rate: float  # source rows handled per second
    eta_seconds: float | None
    state: str  # Running | Finished | Verified | VerificationFailed


@dataclass(frozen=True)
class ShardReport:
    """One shard's row of ``migration_progress``, as its worker last wrote it."""

    shard: str  # "1/4"
    total: int
    migrated: int
    failed: int
    rate: float
    eta_seconds: float | None
    state: str  # Running | Finished | Verified | VerificationFailed
    updated_at: str


@dataclass(frozen=True)
class FailedRow:
    neuron_id: str
    validator: str
    reason: str


@dataclass(frozen=True)
class RunReport:
    """What the workers recorded in a target, read by the operator while the Job runs."""

    cutoff: str
    shard_count: int
    shards: list[ShardReport]
    verified: dict[str, bool]  # scope ("shard 1/4") -> passed
    problems: dict[str, str]  # scope -> first problem, for the scopes that did not pass
    failed_rows: int
    first_failures: list[FailedRow]  # the first few by id

    @classmethod
    def from_rows(
        cls,
        run: Mapping[str, Any],
        shards: Iterable[Mapping[str, Any]],
        checks: Iterable[Mapping[str, Any]],
        failed_rows: int,
        first: Iterable[Mapping[str, Any]],
    ) -> RunReport:
        """From the bookkeeping tables' rows (the same columns in every store)."""
        checks = list(checks)
        return cls(
            cutoff=str(run["cutoff"]),
            shard_count=int(run["shard_count"]),
            shards=[
                ShardReport(
                    shard=row["shard"],
                    total=row["total"],
                    migrated=row["migrated"],
                    failed=row["failed"],
                    rate=row["rate"],
                    eta_seconds=row["eta_seconds"],
                    state=row["state"],
                    updated_at=str(row["updated_at"]),
                )
                for row in shards
            ],
            verified={row["scope"]: bool(row["passed"]) for row in checks},
            problems={row["scope"]: row["problems"].split("\n", 1)[0] for row in checks if not row["passed"]},
            failed_rows=failed_rows,
            first_failures=[FailedRow(row["neuron_id"], row["validator"], row["reason"]) for row in first],
        )


class Store(Protocol):
    """What the engine needs from a database, in either role."""

    # --- source role -----------------------------------------------------------------------------
    def check_source_schema(self) -> None: ...

    def source_cutoff(self) -> str | None:
        """The newest ``created_at`` in the source, or None when it is empty."""

    def count_source(self, shard: Shard, cutoff: str | None) -> int:
        """Rows of the shard created at or before ``cutoff`` (all of them for None)."""

    def read_source(
        self, shard: Shard, after: str | None, cutoff: str, limit: int
    ) -> Sequence[Mapping[str, Any]]:
        """Up to ``limit`` rows of the shard after ``after`` in id order (keyset, never OFFSET)."""

    def read_source_ids(self, ids: Sequence[str], cutoff: str) -> Sequence[Mapping[str, Any]]:
        """The rows with these ids created at or before ``cutoff``, in any order (absent ids: none)."""

    # --- target role -----------------------------------------------------------------------------
    def ensure_target_schema(self) -> None: ...

    def create_flat_table(self) -> None:
        """Create an empty flat ``neurons`` table (seeding test and benchmark data)."""

    def insert_flat(self, rows: Iterable[Sequence[Any]]) -> int: ...

    def begin_run(self, cutoff: str, shard_count: int) -> str:
        """Record the run (first caller wins) and return its cutoff; refuse another sharding."""

    def load_checkpoint(self, shard: Shard) -> Checkpoint | None: ...

    def start_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        """Store a fresh checkpoint unless one exists; return the stored one."""

    def commit_batch(
        self,
        units: Sequence[tuple[Any, ...]],
        failures: Sequence[Failure],
        checkpoint: Checkpoint,
        progress: Progress,
        resolved: Sequence[str] = (),
    ) -> None:
        """Write converted rows, failures, checkpoint and progress in one transaction.

        A failure whose id is already recorded replaces that record (a retry's new reason);
        ``resolved`` ids leave ``migration_failures`` (a retry migrated them, or they are gone)."""

    def finish(self, checkpoint: Checkpoint, progress: Progress) -> None: ...

    def read_units(self, shard: Shard, after: str | None, limit: int) -> Sequence[Mapping[str, Any]]:
        """Up to ``limit`` target rows of the shard after ``after`` in id order."""

    def failed_ids(self, shard: Shard) -> set[str]: ...

    def failed_ids_page(self, shard: Shard, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` ids the shard recorded as failed, after ``after`` in id order."""

    def save_verification(self, verification: Verification) -> None: ...

    def save_progress(self, progress: Progress) -> None: ...

    def run_info(self) -> tuple[str, int] | None:
        """The recorded run's (cutoff, shard count), or None before any run."""

    def read_report(self, sample: int) -> RunReport | None:
        """The run's progress, verifications and first ``sample`` failures; None before any run.
        Read-only: never creates a database, a table or a row."""

    def close(self) -> None: ...


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``: the only form of a URL we ever print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error message) with the password of ``url`` removed, wherever it appears."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = text.replace(url, redact(url))
    if password:
        text = text.replace(password, "***")
    return re.sub(r"(password=)\S+", r"\1***", text)
