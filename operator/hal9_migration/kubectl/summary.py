"""What one Hal9Migration amounts to for a person or a script: a row, a headline and an exit code (pure).

The exit codes are the plugin's contract with scripts (``kubectl hal9 status m && promote-next``):

- 0: at the declared target, and the operator has seen the latest spec; not degraded.
- 1: not there yet: moving, waiting for a step or a gate, paused, or the operator has not caught up.
- 2: needs a person: Stalled (a deadline passed, an abort, an automatic rollback, a failed state
  migration, an invalid spec or a missing object) or Degraded (a rollback trigger is firing).
- 3: the cluster or the object cannot be reached (set by the commands, not here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..inputs import load_status, parse_spec
from ..models import Condition, Hal9MigrationStatus
from ..phases import steps_in
from ..plan import CONTROLS_WAIT_FOR

AT_TARGET, MOVING, NEEDS_A_PERSON, UNREACHABLE = 0, 1, 2, 3

# The condition worth a glance, in the order it matters: what needs a person first, then why it waits.
_HEADLINE_ORDER = (("Stalled", "True"), ("Degraded", "True"), ("Paused", "True"), ("Reconciling", "True"))


@dataclass(frozen=True)
class Summary:
    namespace: str
    name: str
    generation: int
    observed_generation: int | None
    phase: str  # "-" before Shadow
    step: str  # "2/4"
    weight: int | None
    mirror: int | None
    health: float | None
    state_percent: int | None
    headline: Condition | None
    exit_code: int
    rehearsal: bool

    @property
    def condition(self) -> str:
        """``Stalled: DeadlineExceeded``: the headline condition's type and reason."""
        if self.headline is None:
            return "Unknown: the operator has not written status yet"
        return f"{self.headline.type}: {self.headline.reason}"

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "phase": self.phase if self.phase != "-" else None,
            "step": self.step or None,
            "weight": self.weight,
            "mirrorPercent": self.mirror,
            "health": self.health,
            "statePercent": self.state_percent,
            "condition": self.headline.model_dump(by_alias=True, exclude_none=True)
            if self.headline
            else None,
            "rehearsal": self.rehearsal,
            "exitCode": self.exit_code,
        }


def conditions_of(status: Hal9MigrationStatus) -> dict[str, Condition]:
    return {c.type: c for c in status.conditions}


def headline(status: Hal9MigrationStatus) -> Condition | None:
    """The condition that matters most now: Stalled, Degraded, Paused, Reconciling, else Ready."""
    found = conditions_of(status)
    for kind, value in _HEADLINE_ORDER:
        condition = found.get(kind)
        if condition is not None and condition.status == value:
            return condition
    return found.get("Ready")


def exit_code(generation: int, status: Hal9MigrationStatus) -> int:
    """0 at target and healthy, 1 on the way, 2 needs a person (see the module docstring)."""
    found = conditions_of(status)

    def true(kind: str) -> bool:
        return kind in found and found[kind].status == "True"

    if true("Stalled") or true("Degraded"):
        return NEEDS_A_PERSON
    caught_up = status.observed_generation is not None and status.observed_generation >= generation
    ready = found.get("Ready")
    if caught_up and ready is not None and ready.status == "True" and ready.observed_generation == generation:
        return AT_TARGET
    return MOVING


def summarise(obj: Mapping[str, Any]) -> Summary:
    metadata = obj.get("metadata") or {}
    spec = parse_spec(obj.get("spec"))
    status = load_status(obj.get("status"))
    generation = int(metadata.get("generation") or 0)
    steps = steps_in(spec, status.phase) if not isinstance(spec, str) else 0
    step = f"{status.step}/{steps}" if status.step and steps else (str(status.step) if status.step else "")
    state = status.state_migration
    return Summary(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        generation=generation,
        observed_generation=status.observed_generation,
        phase=status.phase.value if status.phase else "-",
        step=step,
        weight=status.weight,
        mirror=status.mirror_percent,
        health=status.health.score if status.health else None,
        state_percent=state.percent if state else None,
        headline=headline(status),
        exit_code=exit_code(generation, status),
        # The spec says whether it rehearses now; the position, whether what status shows was rehearsed.
        rehearsal=(not isinstance(spec, str) and spec.rehearsal)
        or (status.position is not None and status.position.rehearsal),
    )


def controls_blocked(status: Hal9MigrationStatus) -> str | None:
    """Why the operator would not act on a control now (None: it would)."""
    stalled = conditions_of(status).get("Stalled")
    if stalled is not None and stalled.status == "True" and stalled.reason in CONTROLS_WAIT_FOR:
        return (
            f"the migration is Stalled ({stalled.reason}: {stalled.message}); the operator acts on "
            "controls once that is fixed"
        )
    return None


def worst(codes: list[int]) -> int:
    """One code for many migrations: the one that needs the most attention (0 when there are none)."""
    return max(codes, default=AT_TARGET)
