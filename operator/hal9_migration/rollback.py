"""Walking back when the declared target is earlier than where the migration stands (pure).

Going back is declaring an earlier target: ``kubectl apply`` of an older manifest or ``git revert``.
The strategy says how the route object gets there:

- Immediate: the target's routing in one write.
- Gradual: the hierarchical weight goes down by ``stepPercent`` every ``stepInterval`` (the first
  step at once), then the target's routing (its mirror and match routes too) in the last write.
- Partial: only the named components go back (``routing``: weights and mirror; ``targeting``: the
  match routes); the others stay as they are until the spec changes again. ``state`` is the
  state-migration issue's and has no effect on routing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from .clock import later
from .models import Hal9MigrationSpec, RollbackComponent, RollbackStrategy, parse_duration
from .phases import Position

# A Gradual walk back turns Immediate when health falls this far below where it was when the walk began
# (a margin, so the noise of one scrape does not make every Gradual rollback Immediate).
HEALTH_FALL_MARGIN = 0.05

ROLLING_BACK = "RollingBack"  # an intermediate Gradual step
ROLLED_BACK = "RolledBack"  # the target reached by a walk back
PARTIALLY_ROLLED_BACK = "PartiallyRolledBack"


@dataclass(frozen=True)
class BackStep:
    position: Position  # what the route object should hold after this pass
    reason: str
    held: tuple[str, ...] = ()  # components left as they are (Partial)
    wait_until: datetime | None = None  # Gradual: the next step is not due before this

    @property
    def waiting(self) -> bool:
        return self.wait_until is not None


def step_back(
    spec: Hal9MigrationSpec,
    current: Position,
    since: datetime,
    last_reason: str,
    target: Position,
    now: datetime,
    health_falling: bool = False,
) -> BackStep:
    """The next position on the way from ``current`` back to ``target`` (``target.rank`` is lower).

    ``health_falling``: Gradual goes the rest of the way at once (DESIGN §4)."""
    rollback = spec.rollback
    if rollback.strategy is RollbackStrategy.PARTIAL:
        components = set(rollback.partial.components if rollback.partial else [])
        held = tuple(
            c.value for c in (RollbackComponent.ROUTING, RollbackComponent.TARGETING) if c not in components
        )
        position = target if RollbackComponent.ROUTING in components else current
        return BackStep(position, PARTIALLY_ROLLED_BACK, held)
    if rollback.strategy is RollbackStrategy.GRADUAL and not health_falling:
        interval = parse_duration(rollback.gradual.step_interval)
        due = later(since, interval)
        if last_reason == ROLLING_BACK and now < due:
            return BackStep(current, ROLLING_BACK, wait_until=due)
        lower = current.weight - rollback.gradual.step_percent
        if lower > target.weight:
            return BackStep(Position(current.phase, current.step, lower, 0), ROLLING_BACK)
    return BackStep(target, ROLLED_BACK)


def health_fell(baseline: float | None, score: float | None) -> bool:
    """Whether the score is clearly below ``baseline`` (unknown scores never count as a fall)."""
    return baseline is not None and score is not None and score < baseline - HEALTH_FALL_MARGIN


def spec_hash(spec: Hal9MigrationSpec) -> str:
    """A short fingerprint of what a spec declares, to recognise a failed spec coming back.

    ``paused`` is left out: pausing the failed spec and resuming it is not a new spec. So is
    ``rehearsal``: rehearsing the failed spec (and turning the rehearsal off again) is not a fix, so
    a real automatic rollback keeps holding it off until a retry or a real change."""
    declared = spec.model_dump(by_alias=True, mode="json", exclude={"paused", "rehearsal"})
    text = json.dumps(declared, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
