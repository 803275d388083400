"""What the models share: the API names, phases, durations, names, Secret references and bases."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt
from pydantic.alias_generators import to_camel

GROUP = "migration.hal9.ai"
VERSION = "v1alpha1"
KIND = "Hal9Migration"
PLURAL = "hal9migrations"
SINGULAR = "hal9migration"
SHORT_NAMES = ["h9m"]


class Phase(StrEnum):
    """One of HAL9's five migration phases, in order: Shadow, Canary, StateMigration, RampUp, Full."""

    SHADOW = "Shadow"
    CANARY = "Canary"
    STATE_MIGRATION = "StateMigration"
    RAMP_UP = "RampUp"
    FULL = "Full"

    @property
    def number(self) -> int:
        return list(Phase).index(self) + 1


def cel(rule: str, message: str, **extra: str) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry."""
    return {"rule": rule, "message": message, **extra}


def k8s(*rules: dict[str, str], **schema: Any) -> dict[str, Any]:
    """Schema additions for a field or model: CEL rules plus any ``x-kubernetes-*`` keys."""
    extra: dict[str, Any] = dict(schema)
    if rules:
        extra["x-kubernetes-validations"] = list(rules)
    return extra


# --- durations -------------------------------------------------------------------------------------

# At most six digits a part keeps every accepted duration far inside what timedelta can hold.
_DURATION_PART = re.compile(r"([0-9]{1,6})(ms|s|m|h|d)")
_DURATION_RE = r"^([0-9]{1,6}(ms|s|m|h|d))+$"
_DURATION_MESSAGE = "must be a positive duration: a number and a unit (ms, s, m, h, d), e.g. 30s, 1h30m, 7d"
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``5m``, ``1h30m``, ``7d``; reject anything else, including zero and negatives."""
    if not re.fullmatch(_DURATION_RE, text):
        raise ValueError(f"{_DURATION_MESSAGE}; got {text!r}")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{_DURATION_MESSAGE}; got {text!r}")
    return timedelta(seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(
        max_length=32,
        json_schema_extra=k8s(
            cel(f"self.matches('{_DURATION_RE}') && self.matches('[1-9]')", _DURATION_MESSAGE)
        ),
    ),
]

# --- names -------------------------------------------------------------------------------------------

DNS1035Label = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")]
DNS1123Subdomain = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]
Percent = Annotated[StrictInt, Field(ge=0, le=100)]
Ratio = Annotated[float, Field(ge=0, le=1)]


def _strictly_increasing(steps: list[int]) -> list[int]:
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError(f"steps must be strictly increasing, got {steps}")
    return steps


Steps = Annotated[
    list[Annotated[StrictInt, Field(ge=1, le=100)]],
    AfterValidator(_strictly_increasing),
    Field(
        min_length=1,
        max_length=20,
        json_schema_extra=k8s(
            cel(
                "self.isSorted() && self.all(x, self.exists_one(y, y == x))",
                "steps must be strictly increasing (each weight larger than the one before)",
            )
        ),
    ),
]


class Model(BaseModel):
    """Base for spec models: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class StatusModel(BaseModel):
    """Base for status models: camelCase, tolerant of fields written by newer operator versions."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SecretKeyRef(Model):
    """One key of a Secret in the migration's namespace."""

    name: DNS1123Subdomain = Field(description="Name of the Secret, in the migration's namespace.")
    key: str = Field(
        min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key within the Secret."
    )


def require_unique(values: list[Any], where: str) -> None:
    """Refuse repeated entries in a list the CRD declares a set or a map: the API server refuses them at
    admission, and the operator must refuse an object that bypassed it the same way."""
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"{where}: duplicate entries {sorted(set(map(str, seen)))}")
