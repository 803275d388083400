"""Which neuron ids a shard owns (pure).

Shard ``i`` of ``n`` owns the ids ``lo <= id < hi`` in plain string order, with boundaries cut from
the first 32 bits of the UUID space and written as canonical UUIDs (so a database can compare them
as UUIDs too: for canonical lowercase ids, string order is UUID order). Consecutive shards share a
boundary, the first has no lower and the last no upper bound, so the shards partition *every* string
(canonical UUID or not): no id is in two shards, none in no shard. Random (v4) UUIDs spread evenly
over them. It is the shape of a Kubernetes Indexed Job: ``--shard $JOB_COMPLETION_INDEX --shards N``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"--shards must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"--shard must be in 0..{self.count - 1}, got {self.index}")

    @property
    def lo(self) -> str | None:
        """Inclusive lower bound, or None for the first shard."""
        return _boundary(self.index, self.count) if self.index > 0 else None

    @property
    def hi(self) -> str | None:
        """Exclusive upper bound, or None for the last shard."""
        return _boundary(self.index + 1, self.count) if self.index < self.count - 1 else None

    def owns(self, neuron_id: str) -> bool:
        return (self.lo is None or neuron_id >= self.lo) and (self.hi is None or neuron_id < self.hi)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _boundary(index: int, count: int) -> str:
    return f"{(index << 32) // count:08x}-0000-0000-0000-000000000000"
