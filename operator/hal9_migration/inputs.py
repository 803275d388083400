"""Reading what a pass starts from: the spec, the status, a route object's position record (pure).

Nothing read from the API server is trusted to be well formed: a spec that bypassed admission becomes
a one-line explanation (the migration is then Stalled with InvalidSpec), and a status field the
operator cannot read is dropped without losing the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .models import Hal9MigrationSpec, Hal9MigrationStatus, PositionRecord


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


def load_record(raw: Any) -> PositionRecord | None:
    """A position record read from a route object's annotation, or None if it is not one."""
    try:
        return PositionRecord.model_validate(raw)
    except ValidationError:
        return None


def references(spec: Hal9MigrationSpec) -> list[tuple[str, str]]:
    """The (kind, name) pairs the spec points at, which must exist before anything moves."""
    return [
        ("Service", spec.flat.service),
        ("Deployment", spec.flat.deployment),
        ("Service", spec.hierarchical.service),
        ("Deployment", spec.hierarchical.deployment),
    ]
