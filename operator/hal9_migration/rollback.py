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

from dataclasses import dataclass
from datetime import datetime

from .clock import later
from .models import Hal9MigrationSpec, RollbackComponent, RollbackStrategy, parse_duration
from .phases import Position

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
) -> BackStep:
    """The next position on the way from ``current`` back to ``target`` (``target.rank`` is lower)."""
    rollback = spec.rollback
    if rollback.strategy is RollbackStrategy.PARTIAL:
        components = set(rollback.partial.components if rollback.partial else [])
        held = tuple(
            c.value for c in (RollbackComponent.ROUTING, RollbackComponent.TARGETING) if c not in components
        )
        position = target if RollbackComponent.ROUTING in components else current
        return BackStep(position, PARTIALLY_ROLLED_BACK, held)
    if rollback.strategy is RollbackStrategy.GRADUAL:
        interval = parse_duration(rollback.gradual.step_interval)
        due = later(since, interval)
        if last_reason == ROLLING_BACK and now < due:
            return BackStep(current, ROLLING_BACK, wait_until=due)
        lower = current.weight - rollback.gradual.step_percent
        if lower > target.weight:
            return BackStep(Position(current.phase, current.step, lower, 0), ROLLING_BACK)
    return BackStep(target, ROLLED_BACK)
