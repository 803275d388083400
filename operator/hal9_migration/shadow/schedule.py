"""Which requests get a shadow copy under ``--shadow-percent`` (pure).

``phases.shadow.mirrorPercent`` lets a migration copy only part of the traffic to hierarchical (a
system that cannot yet take all of it). The choice is a schedule, not a coin: request n is copied when
floor((n+1)·p) > floor(n·p), so over any run of requests the copied share is p to within one request,
and a test or a dashboard sees exactly the configured share, not a random walk around it.
"""

from __future__ import annotations

import math
from fractions import Fraction


class CopySchedule:
    def __init__(self, percent: float) -> None:
        if not 0 <= percent <= 100:
            raise ValueError("percent must be in [0, 100]")
        self.share = Fraction(percent).limit_denominator(1_000_000) / 100
        self.count = 0
        self.every = self.share == 1  # the common case costs one attribute read

    def next_copied(self) -> bool:
        """Whether the next request is copied to hierarchical."""
        if self.every:
            return True
        n = self.count
        self.count += 1
        return math.floor((n + 1) * self.share) > math.floor(n * self.share)
