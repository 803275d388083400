"""Desired spec + observed world -> the next status and what to announce (pure).

This is the walking skeleton of the decision core: it validates the spec, checks that the workloads it
names exist, and states the outcome as conditions. The phase machine (weights, gates, rollback) grows
here in later issues; the shape stays: one pure function per pass, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from . import conditions
from .conditions import Desired
from .models import Condition, Hal9MigrationSpec, Hal9MigrationStatus


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """What the edge read from the cluster for this pass ("Kind namespace/name" entries)."""

    missing: Sequence[str] = ()  # referenced objects that do not exist
    forbidden: Sequence[str] = ()  # referenced objects the operator may not read


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]  # the full new status, camelCase, ready to patch
    changed: bool  # False when the status already says exactly this
    events: list[Event] = field(default_factory=list)
    summary: str = ""


def parse_spec(raw: Any) -> Hal9MigrationSpec | str:
    """The spec model, or a one-line explanation of what is wrong with it."""
    try:
        return Hal9MigrationSpec.model_validate(raw)
    except ValidationError as error:
        return describe(error)


def describe(error: ValidationError, limit: int = 5) -> str:
    """``spec.a.b: message; ...``, the first ``limit`` problems, for a condition message."""
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(p) for p in ("spec", *item["loc"]))
        parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def load_status(raw: Mapping[str, Any] | None) -> Hal9MigrationStatus:
    """The current status. A field the operator cannot read is dropped, not the whole status:
    where the migration stands (phase, weight) must survive one bad neighbour."""
    raw = raw if isinstance(raw, Mapping) else {}
    try:
        return Hal9MigrationStatus.model_validate(raw)
    except ValidationError:
        readable: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                Hal9MigrationStatus.model_validate({key: value})
            except ValidationError:
                continue
            readable[key] = value
        return Hal9MigrationStatus.model_validate(readable)


def references(spec: Hal9MigrationSpec) -> list[tuple[str, str]]:
    """The (kind, name) pairs the spec points at, which must exist before anything moves."""
    return [
        ("Service", spec.flat.service),
        ("Deployment", spec.flat.deployment),
        ("Service", spec.hierarchical.service),
        ("Deployment", spec.hierarchical.deployment),
    ]


def decide(
    spec: Hal9MigrationSpec | str,
    generation: int,
    current: Hal9MigrationStatus,
    observed: Observed,
    now: datetime,
) -> Decision:
    """One pass: what the status should say now."""
    if isinstance(spec, str):
        wanted = _stalled("InvalidSpec", f"The spec is invalid: {spec}")
        paused = Desired("Paused", "Unknown", "InvalidSpec", "The spec cannot be read")
        summary = "invalid spec"
    else:
        paused = _paused(spec)
        if observed.forbidden:
            message = "The operator may not read: " + ", ".join(observed.forbidden) + "; check its RBAC"
            wanted = _stalled("ReferenceForbidden", message)
            summary = "references forbidden"
        elif observed.missing:
            wanted = _stalled("ReferenceNotFound", "Not found: " + ", ".join(observed.missing))
            summary = "missing references"
        else:
            wanted = _resolved()
            summary = "references resolved"

    new_conditions = conditions.apply(current.conditions, [*wanted, paused], generation, now)
    status = dump_status(
        current.model_copy(update={"observed_generation": generation, "conditions": new_conditions})
    )
    events = [_event(c) for c in conditions.transitions(current.conditions, new_conditions)]
    return Decision(
        status=status,
        changed=status != dump_status(current),
        events=[e for e in events if e is not None],
        summary=summary,
    )


def dump_status(status: Hal9MigrationStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _stalled(reason: str, message: str) -> list[Desired]:
    return [
        Desired("Ready", "False", reason, message),
        Desired("Reconciling", "False", reason, "Cannot proceed without a change to the spec or cluster"),
        Desired("Stalled", "True", reason, message),
        Desired("Degraded", "False", "NoAnalysis", "No health analysis has run"),
    ]


def _resolved() -> list[Desired]:
    message = (
        "Flat and hierarchical Services and Deployments exist; "
        "phase progression is not implemented in this version"
    )
    return [
        Desired("Ready", "True", "ReferencesResolved", message),
        Desired("Reconciling", "False", "ReferencesResolved", ""),
        Desired("Stalled", "False", "ReferencesResolved", ""),
        Desired("Degraded", "False", "NoAnalysis", "No health analysis has run"),
    ]


def _paused(spec: Hal9MigrationSpec) -> Desired:
    if spec.paused:
        return Desired("Paused", "True", "PausedBySpec", "spec.paused is true: no step will be taken")
    return Desired("Paused", "False", "NotPaused", "")


def _event(condition: Condition) -> Event | None:
    """The Event announcing a condition's new state, for the states worth announcing."""
    if condition.type == "Stalled" and condition.status == "True":
        return Event("Warning", condition.reason, condition.message)
    if condition.type == "Ready" and condition.status == "True":
        return Event("Normal", condition.reason, condition.message)
    if condition.type == "Paused" and condition.status == "True":
        return Event("Normal", "Paused", condition.message)
    return None
