"""How a walk back moves the route object, and when the operator rolls back by itself."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator

from .common import Duration, Model, Ratio, cel, k8s, require_unique


class RollbackStrategy(StrEnum):
    """How the route object walks back to an earlier target."""

    IMMEDIATE = "Immediate"
    GRADUAL = "Gradual"
    PARTIAL = "Partial"


class GradualRollback(Model):
    """Gradual: the hierarchical weight goes down in steps; Immediate after all if health keeps falling."""

    step_percent: StrictInt = Field(
        10, ge=1, le=100, description="How many percentage points the hierarchical weight drops per step."
    )
    step_interval: Duration = Field("30s", description="Time between two steps down (a duration).")


class RollbackComponent(StrEnum):
    """What a Partial rollback can take back."""

    ROUTING = "routing"
    TARGETING = "targeting"
    STATE = "state"


class PartialRollback(Model):
    """Partial: only the named components go back; the others stay as they are."""

    components: list[RollbackComponent] = Field(
        min_length=1,
        max_length=3,
        description="What goes back: routing (the weights and the mirror), targeting (the match routes "
        "of the targeting rules), state (stops a running state-migration Job).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _unique(self) -> PartialRollback:
        require_unique(self.components, "rollback.partial.components")
        return self


class Rollback(Model):
    """How the migration walks back (a reverted spec, or the operator's own automatic rollback) and what
    triggers an automatic rollback."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "!has(self.strategy) || self.strategy != 'Partial' || has(self.partial)",
                "strategy Partial needs partial.components",
            )
        )
    )

    strategy: RollbackStrategy = Field(
        RollbackStrategy.IMMEDIATE,
        description="Immediate: the earlier routing in one write. Gradual: the weight goes down in "
        "gradual.stepPercent steps. Partial: only partial.components go back.",
    )
    automatic: StrictBool = Field(
        True,
        description="Roll back by itself when a trigger fires failureLimit runs in a row. With false the "
        "Degraded condition reports the firing trigger and a person decides.",
    )
    max_error_rate: Ratio = Field(
        0.05, description="Trigger: hierarchical's error rate (0..1) above this counts as a failed run."
    )
    min_health_score: Ratio = Field(
        0.8, description="Trigger: a health score (0..1) below this counts as a failed run."
    )
    gradual: GradualRollback = Field(
        default_factory=GradualRollback,
        description="The steps of a Gradual walk back.",
        json_schema_extra={"default": {}},
    )
    partial: PartialRollback | None = Field(
        None, description="What a Partial walk back takes back; required with strategy Partial."
    )

    @model_validator(mode="after")
    def _partial_needs_components(self) -> Rollback:
        if self.strategy is RollbackStrategy.PARTIAL and self.partial is None:
            raise ValueError("strategy Partial needs partial.components")
        return self
