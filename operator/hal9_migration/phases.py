"""HAL9's five phases as a path of positions, from the spec (pure).

A *position* is one thing the route object can hold: a phase, a step inside it, a hierarchical
weight and a mirror share. The spec's ``targetPhase`` and ``trafficSplit`` cut the forward path
short; the machine walks it one position at a time. Positions are ordered by (phase, weight), which
is how a position recorded under an older spec (other steps, another cap) is placed on a new path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .clock import parse_time
from .models import Hal9MigrationSpec, Phase, PositionRecord, parse_duration


@dataclass(frozen=True)
class Position:
    phase: Phase | None  # None: before Shadow (not started, or aborted to all-flat)
    step: int  # 1-based inside the phase; 0 before Shadow
    weight: int  # hierarchical share of the traffic
    mirror: int = 0  # share of requests mirrored to hierarchical

    @property
    def rank(self) -> tuple[int, int]:
        """Order along the migration: phase first, then weight."""
        return (self.phase.number if self.phase else 0, self.weight)

    def label(self) -> str:
        if self.phase is None:
            return "not started (all traffic on flat)"
        mirror = f", mirror {self.mirror}%" if self.mirror else ""
        return f"{self.phase.value} step {self.step} ({self.weight}%{mirror})"


START = Position(None, 0, 0, 0)


def at(record: PositionRecord | None) -> Position:
    """The position a record says the route object holds (START without one)."""
    if record is None:
        return START
    return Position(record.phase, record.step, record.weight, record.mirror)


def taken_at(record: PositionRecord) -> datetime:
    """When the route object took the record's position."""
    return parse_time(record.since) or datetime.min.replace(tzinfo=UTC)


def phase_number(position: Position) -> int:
    return position.phase.number if position.phase else 0


def _capped(steps: list[int], cap: int | None) -> list[int]:
    """The steps walked when ``cap`` is the highest weight allowed (ending exactly at the cap)."""
    if cap is None:
        return list(steps)
    return [s for s in steps if s < cap] + ([cap] if cap > 0 else [])


def path(spec: Hal9MigrationSpec) -> list[Position]:
    """Every position from START to the declared target, in order; the last one is the target."""
    target, cap, phases = spec.target_phase, spec.traffic_split, spec.phases
    out = [START, Position(Phase.SHADOW, 1, 0, phases.shadow.mirror_percent)]
    if target is Phase.SHADOW:
        return out
    in_canary = target in (Phase.CANARY, Phase.STATE_MIGRATION)
    canary = _capped(phases.canary.steps, cap if in_canary else None)
    out += [Position(Phase.CANARY, i, w) for i, w in enumerate(canary, 1)]
    if target is Phase.CANARY:
        return out
    out.append(Position(Phase.STATE_MIGRATION, 1, canary[-1] if canary else 0))
    if target is Phase.STATE_MIGRATION:
        return out
    ramp = _capped(phases.ramp_up.steps, cap if target is Phase.RAMP_UP else None)
    out += [Position(Phase.RAMP_UP, i, w) for i, w in enumerate(ramp, 1)]
    if target is Phase.RAMP_UP:
        return out
    out.append(Position(Phase.FULL, 1, 100))
    return out


def locate(positions: list[Position], rank: tuple[int, int]) -> int:
    """Index of the last position at or before ``rank`` (0, START, when none is)."""
    index = 0
    for i, position in enumerate(positions):
        if position.rank <= rank:
            index = i
    return index


def hold_time(spec: Hal9MigrationSpec, phase: Phase | None) -> timedelta:
    """How long a step of ``phase`` is held before its gate is asked (StateMigration: its gate only)."""
    phases = spec.phases
    match phase:
        case Phase.SHADOW:
            return parse_duration(phases.shadow.duration)
        case Phase.CANARY:
            return parse_duration(phases.canary.step_duration)
        case Phase.RAMP_UP:
            return parse_duration(phases.ramp_up.step_duration)
        case _:
            return timedelta(0)


def steps_in(spec: Hal9MigrationSpec, phase: Phase | None) -> int:
    """How many steps ``phase`` has on the full (uncapped) plan, for messages."""
    if phase is Phase.CANARY:
        return len(spec.phases.canary.steps)
    if phase is Phase.RAMP_UP:
        return len(spec.phases.ramp_up.steps)
    return 1 if phase else 0
