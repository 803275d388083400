"""The plan ahead: every step from where a migration stands to its declared target, with the gate
that guards each one and the earliest time it can be taken (pure).

``kubectl hal9 plan`` prints it before anything is applied; ``kubectl hal9 status`` draws its phase
timeline from it. The times are lower bounds: a step is left no sooner than its hold time (RampUp:
also ``stableFor`` when analysis runs) after it was taken, and later if its gate has not passed by
then. A state migration's run time is not known in advance, so the steps after it have no time
(``None``) unless the migration is a rehearsal, which runs no Job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from . import analysis, gates, phases, shadowproxy
from .analysis.verdicts import Bound, gate_bounds
from .clock import later
from .flags import targeting_at
from .models import Hal9MigrationSpec, Phase, PositionRecord, parse_duration
from .phases import START, Position


@dataclass(frozen=True)
class PlannedStep:
    position: Position
    route_mirror: int  # the share the route object mirrors (0 in Proxy mode: the proxy copies instead)
    through_proxy: bool  # Shadow in Proxy mode: flat's share goes through the shadow proxy
    targeting: tuple[str, ...]  # "rule -> System", first match wins
    gate: str  # the gate that guards leaving this step
    criteria: tuple[str, ...]  # what that gate asks, with the spec field each limit comes from
    hold: timedelta | None  # the least time spent at this step (None: as long as the state migration runs)
    reached: datetime | None  # earliest time the step is taken (None: unknown)
    leaves: datetime | None  # earliest time its gate can let the migration go on (None: unknown, or target)
    current: bool = False  # the route object holds this step now


@dataclass(frozen=True)
class Plan:
    here: Position
    target: Position
    direction: str  # "forward" | "back" | "at target"
    steps: list[PlannedStep]  # from the current step (when started) to the target, in order
    note: str = ""  # how a walk back goes


def limit(bound: Bound) -> str:
    """``error-rate < 0.001 (phases.canary.maxErrorRate)``: a gate's limit with its source."""
    below = "<" if bound.strict else "<="
    parts = []
    if bound.low is not None:
        parts.append(f"{bound.name} >= {bound.low:.4g}")
    if bound.high is not None:
        parts.append(f"{bound.name} {below} {bound.high:.4g}")
    return f"{' and '.join(parts)} ({bound.source})"


def criteria(spec: Hal9MigrationSpec, position: Position) -> tuple[str, ...]:
    """What the gate guarding ``position`` asks, in words a person checks against the spec."""
    gate = gates.gate_for(spec, position)
    asks: list[str] = []
    if gate.name == gates.ShadowProxyRouted.name:
        asks.append("traffic goes through the shadow proxy")
    if position.phase is Phase.STATE_MIGRATION:
        asks.append(
            "none for the data: a rehearsal runs no Job"
            if spec.rehearsal
            else "every shard succeeded and NoDataLoss passed"
        )
    if analysis.configured(spec):
        asks += [limit(b) for b in gate_bounds(spec, position.phase)]
        if position.phase is Phase.RAMP_UP:
            asks.append(f"every check passing for phases.rampUp.stableFor {spec.phases.ramp_up.stable_for}")
    elif position.phase is not Phase.STATE_MIGRATION:
        asks.append("time only (no analysis is configured)")
    return tuple(asks)


def least_hold(spec: Hal9MigrationSpec, position: Position) -> timedelta | None:
    """The least time at ``position`` before its gate can pass; None while a state migration runs."""
    if position.phase is Phase.STATE_MIGRATION:
        return timedelta(0) if spec.rehearsal else None
    hold = phases.hold_time(spec, position.phase)
    if position.phase is Phase.RAMP_UP and analysis.configured(spec):
        hold = max(hold, parse_duration(spec.phases.ramp_up.stable_for))
    return hold


def _step(
    spec: Hal9MigrationSpec, position: Position, reached: datetime | None, last: bool, current: bool
) -> PlannedStep:
    hold = least_hold(spec, position)
    leaves = None if last or reached is None or hold is None else later(reached, hold)
    rules = targeting_at(spec, position) or ()
    proxy = position.phase is Phase.SHADOW and shadowproxy.in_use(spec)
    return PlannedStep(
        position=position,
        route_mirror=shadowproxy.route_mirror(spec, position),
        through_proxy=proxy,
        targeting=tuple(f"{rule.name} -> {rule.route.value}" for rule in rules),
        gate=gates.gate_for(spec, position).name,
        criteria=criteria(spec, position) if not last else (),
        hold=hold,
        reached=reached,
        leaves=leaves,
        current=current,
    )


def plan(spec: Hal9MigrationSpec, record: PositionRecord | None, now: datetime) -> Plan:
    """The steps from where ``record`` says the route object stands (START without one) to the target."""
    path = phases.path(spec)
    target = path[-1]
    here = phases.at(record)
    since = phases.taken_at(record) if record is not None and here != START else now
    if here.rank > target.rank:
        strategy = spec.rollback.strategy.value
        note = f"walks back to {target.label()} with rollback.strategy {strategy}"
        back = [_step(spec, here, since, False, True), _step(spec, target, None, True, False)]
        return Plan(here, target, "back", back, note)
    index = phases.locate(path, here.rank)
    ahead = path[index:] if path[index] == here else [here, *path[index + 1 :]]
    steps: list[PlannedStep] = []
    reached: datetime | None = since
    for i, position in enumerate(ahead):
        if position == START:
            continue  # left at once: Shadow is taken when the migration starts
        step = _step(spec, position, reached, i == len(ahead) - 1, position == here)
        steps.append(step)
        reached = step.leaves
    direction = "at target" if here == target else "forward"
    return Plan(here, target, direction, steps)
