"""Condition bookkeeping in the standard Kubernetes shape (pure).

kstatus reads ``Ready``, ``Reconciling`` and ``Stalled``; ``lastTransitionTime`` changes only when a
condition's status flips, so re-running an unchanged pass (an operator restart, a replayed event)
leaves the conditions byte-for-byte as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .models import Condition, ConditionStatus

# The order conditions appear in status: the kstatus ones first, always present.
CONDITION_TYPES = ("Ready", "Reconciling", "Stalled", "Degraded", "Paused")

# The reason of the placeholder condition in the CRD's default status (crd.AWAITING_OPERATOR_STATUS),
# which the API server shows until an operator writes status. No operator stamped its time (1970), so
# the first pass stamps its own even when the status stays True.
AWAITING_OPERATOR = "AwaitingOperator"


@dataclass(frozen=True)
class Desired:
    """What one condition should say after this pass."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serialises."""
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def apply(
    current: Iterable[Condition], desired: Iterable[Desired], generation: int, now: datetime
) -> list[Condition]:
    """Merge ``desired`` into ``current``: keep transition times of unflipped statuses, keep unknown types."""
    by_type = {c.type: c for c in current}
    for want in desired:
        old = by_type.get(want.type)
        kept = (
            old if old is not None and old.status == want.status and old.reason != AWAITING_OPERATOR else None
        )
        by_type[want.type] = Condition(
            type=want.type,
            status=want.status,
            reason=want.reason,
            message=want.message,
            last_transition_time=kept.last_transition_time if kept is not None else timestamp(now),
            observed_generation=generation,
        )
    known = [by_type.pop(t) for t in CONDITION_TYPES if t in by_type]
    return known + sorted(by_type.values(), key=lambda c: c.type)


def transitions(before: Iterable[Condition], after: Iterable[Condition]) -> list[Condition]:
    """Conditions in ``after`` whose status or reason differs from ``before``: what deserves an Event."""
    old = {c.type: (c.status, c.reason) for c in before}
    return [c for c in after if old.get(c.type) != (c.status, c.reason)]
