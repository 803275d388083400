"""Feature-flag targeting: which match routes the route object carries at a position (pure).

Targeting rules are declared in ``spec.targeting`` (first match wins) and apply from Shadow on: a
request that matches goes to the rule's system whatever the weights say. Before Shadow (not started,
or aborted) the route object carries none, so an abort sends every request to flat.
"""

from __future__ import annotations

from .models import Hal9MigrationSpec, RollbackComponent, TargetingRule
from .phases import Position


def targeting_at(
    spec: Hal9MigrationSpec, position: Position, held: tuple[str, ...] = ()
) -> tuple[TargetingRule, ...] | None:
    """The rules to carry at ``position``; None leaves the route object's match routes as they are."""
    if RollbackComponent.TARGETING.value in held:
        return None
    if position.phase is None:
        return ()
    return tuple(spec.targeting)
