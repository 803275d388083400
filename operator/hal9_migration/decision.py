"""What a pass decides, as the edge receives it, and what it starts from (pure data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import phases
from .controls import Control
from .models import Hal9MigrationStatus, PositionRecord
from .report import Event, Report
from .shadowproxy import ProxyAction
from .traffic.base import ObservedRouting, Routing


@dataclass(frozen=True)
class StateAction:
    """What the edge must do to the state-migration Job of ``attempt``."""

    verb: str  # create | suspend | resume
    attempt: int
    shards: int  # the run's sharding: the target's once a run started, else spec.workers


@dataclass(frozen=True)
class Observed:
    """What the edge read from the cluster for this pass ("Kind namespace/name" entries)."""

    missing: Sequence[str] = ()  # referenced objects that do not exist
    forbidden: Sequence[str] = ()  # referenced objects the operator may not read


@dataclass(frozen=True)
class RouteView:
    """The route object as the edge found it."""

    observed: ObservedRouting
    memory: PositionRecord | None = None  # the operator's record on it, when it names this migration
    owner: str | None = None  # another existing migration that drives this route object
    unsupported: str | None = None  # why the router can never carry this spec's routing


@dataclass(frozen=True)
class RouteWrite:
    """What the route object must hold after this pass (written only if it differs)."""

    routing: Routing
    record: PositionRecord


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]  # the full new status, camelCase, ready to patch
    changed: bool  # False when the status already says exactly this
    events: list[Event] = field(default_factory=list)
    route: RouteWrite | None = None
    consume: list[Control] = field(default_factory=list)  # annotations to remove
    requeue_after: float | None = None  # seconds until something falls due; None: nothing timed
    summary: str = ""
    state: StateAction | None = None
    proxy: ProxyAction | None = None  # the shadow proxy: apply (create/update) or delete, after the route


def decision_of(
    report: Report,
    summary: str,
    route: RouteWrite | None = None,
    consume: list[Control] | None = None,
    requeue_after: float | None = None,
    state: StateAction | None = None,
    proxy: ProxyAction | None = None,
) -> Decision:
    return Decision(
        status=report.status,
        changed=report.changed,
        events=report.events,
        route=route,
        consume=consume or [],
        requeue_after=requeue_after,
        summary=summary,
        state=state,
        proxy=proxy,
    )


def standing(
    status: Hal9MigrationStatus, memory: PositionRecord | None, rehearsal: bool = False
) -> PositionRecord | None:
    """Where the migration stands: the route object's own record when newer than status's, else
    status's.

    A rehearsal stands at its own record (``status.position`` marked ``rehearsal``) once it has one,
    else where the migration really stands, as a rehearsal record, so it starts from there. Outside a
    rehearsal a rehearsed position is never believed: the route object never held it."""
    known = status.position
    if known is not None and known.rehearsal:
        if rehearsal:
            return known
        known = None
    real = known
    if memory is not None and (known is None or phases.taken_at(memory) > phases.taken_at(known)):
        real = memory
    if rehearsal and real is not None:
        return real.model_copy(update={"rehearsal": True})
    return real
