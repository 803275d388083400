"""The spec: where the migration should be, with every rule a user can break (see the package).

Its parts live by idea in ``routing``, ``phases``, ``analysis``, ``statemigration`` and ``rollback``;
the cross-field rules that tie them together live here."""

from __future__ import annotations

from pydantic import ConfigDict, Field, StrictBool, model_validator

from .analysis import Analysis
from .common import Duration, Model, Percent, Phase, cel, k8s, require_unique
from .phases import Phases, ShadowMode
from .rollback import Rollback
from .routing import TargetingRule, TrafficRouter, WorkloadRef
from .statemigration import StateMigration

_PHASES_AFTER_STATE = "['StateMigration', 'RampUp', 'Full']"
_DISTINCT_WORKLOADS = "flat and hierarchical must name different Services and different Deployments"
_LAST_CANARY = "self.phases.canary.steps[size(self.phases.canary.steps) - 1]"
_LAST_RAMP_UP = "self.phases.rampUp.steps[size(self.phases.rampUp.steps) - 1]"
# One rule per phase, so the rejection names the range that applies (traffic_split_range() in Python).
_TRAFFIC_SPLIT_RULES = [
    cel(
        f"!has(self.trafficSplit) || self.targetPhase != '{phase}' || ({allowed})",
        f"trafficSplit is outside the range of targetPhase {phase}: {explained}",
        fieldPath=".trafficSplit",
    )
    for phase, allowed, explained in [
        ("Shadow", "self.trafficSplit == 0", "Shadow mirrors traffic and holds the weight at 0"),
        (
            "Canary",
            f"self.trafficSplit >= self.phases.canary.steps[0] && self.trafficSplit <= {_LAST_CANARY}",
            "it must lie within phases.canary.steps (1..25 by default)",
        ),
        (
            "StateMigration",
            f"self.trafficSplit <= {_LAST_CANARY}",
            "it must not exceed the last of phases.canary.steps (25 by default)",
        ),
        (
            "RampUp",
            f"self.trafficSplit >= self.phases.rampUp.steps[0] && self.trafficSplit <= {_LAST_RAMP_UP}",
            "it must lie within phases.rampUp.steps (50..90 by default)",
        ),
        ("Full", "self.trafficSplit == 100", "Full sends all traffic to hierarchical, so it must be 100"),
    ]
]


class Hal9MigrationSpec(Model):
    """Where the migration should be; the operator walks there one gated step at a time."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            *_TRAFFIC_SPLIT_RULES,
            cel(
                "self.flat.service != self.hierarchical.service "
                "&& self.flat.deployment != self.hierarchical.deployment",
                _DISTINCT_WORKLOADS,
            ),
            cel(
                f"!(self.targetPhase in {_PHASES_AFTER_STATE}) || has(self.stateMigration)",
                "stateMigration is required when targetPhase is StateMigration, RampUp or Full",
            ),
        )
    )

    flat: WorkloadRef = Field(
        description="The flat system (migrated from).",
        json_schema_extra=k8s(
            cel("self == oldSelf", "flat is immutable: create a new Hal9Migration instead")
        ),
    )
    hierarchical: WorkloadRef = Field(
        description="The hierarchical system (migrated to).",
        json_schema_extra=k8s(
            cel("self == oldSelf", "hierarchical is immutable: create a new Hal9Migration instead")
        ),
    )
    target_phase: Phase = Field(
        description="The phase to drive to and hold in: Shadow, Canary, StateMigration, RampUp or Full. "
        "An earlier phase than the current one walks back (see rollback)."
    )
    traffic_split: Percent | None = Field(
        None,
        description="A cap, in percent, on the hierarchical weight inside targetPhase: the walk stops at "
        "the last step not above it. Must lie within targetPhase's range; no cap if unset.",
    )
    paused: StrictBool = Field(
        False, description="Hold where the migration is and take no step until set back to false."
    )
    rehearsal: StrictBool = Field(
        False,
        description="A dry run against the live cluster: walk the whole plan, evaluating every gate on "
        "real metrics at each would-be step, but write nothing to the route object, create no "
        "state-migration Job and run no shadow proxy; history records each step it would have taken. "
        "It starts where the migration stands; setting it back to false resumes from the route object.",
        # Left out of dumps while false: the spec hash of a migration that never rehearses stays as it was.
        exclude_if=lambda rehearsal: not rehearsal,
    )
    phases: Phases = Field(
        default_factory=Phases,
        description="Per-phase settings: steps, durations and gate limits; every number defaults to "
        "HAL9's plan.",
        json_schema_extra={"default": {}},
    )
    targeting: list[TargetingRule] = Field(
        default_factory=list,
        max_length=32,
        description="Feature-flag targeting rules; the first that matches wins.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    traffic_router: TrafficRouter = Field(
        description="The route object whose weights the operator sets: exactly one of istio, gatewayAPI "
        "or smi."
    )
    analysis: Analysis = Field(
        default_factory=Analysis,
        description="How gates and rollback triggers are measured: Prometheus queries over HAL9's metrics.",
        json_schema_extra={"default": {}},
    )
    state_migration: StateMigration | None = Field(
        None,
        description="Phase 3's copy of the neuron states to hierarchical's database; required when "
        "targetPhase is StateMigration, RampUp or Full.",
    )
    rollback: Rollback = Field(
        default_factory=Rollback,
        description="How a walk back moves the route object, and when the operator rolls back by itself.",
        json_schema_extra={"default": {}},
    )
    progress_deadline: Duration = Field(
        "30m",
        description="A step whose gate has not passed in this time (a duration) stops as Stalled with "
        "the reason, until a retry or a new spec.",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> Hal9MigrationSpec:
        require_unique([t.name for t in self.targeting], "targeting")
        if (
            self.flat.service == self.hierarchical.service
            or self.flat.deployment == self.hierarchical.deployment
        ):
            raise ValueError(_DISTINCT_WORKLOADS)
        low, high = traffic_split_range(self.target_phase, self.phases)
        if self.traffic_split is not None and not low <= self.traffic_split <= high:
            raise ValueError(
                f"trafficSplit {self.traffic_split} is outside the range of targetPhase "
                f"{self.target_phase.value} ({low}..{high})"
            )
        if self.target_phase.number >= Phase.STATE_MIGRATION.number and self.state_migration is None:
            raise ValueError("stateMigration is required when targetPhase is StateMigration, RampUp or Full")
        return self


def shadow_proxied(spec: Hal9MigrationSpec) -> bool:
    """Whether Shadow runs through the operator's shadow proxy, which compares the answers: Proxy mode
    outside a rehearsal. A rehearsal runs no proxy, so its Shadow is gated and measured as Mirror
    mode's is; the one predicate keeps the gates, the analysis and the proxy's plan agreeing."""
    return spec.phases.shadow.mode is ShadowMode.PROXY and not spec.rehearsal


def traffic_split_range(phase: Phase, phases: Phases) -> tuple[int, int]:
    """The hierarchical weights a ``trafficSplit`` may cap ``phase`` at (inclusive)."""
    match phase:
        case Phase.SHADOW:
            return 0, 0
        case Phase.CANARY:
            return phases.canary.steps[0], phases.canary.steps[-1]
        case Phase.STATE_MIGRATION:
            return 0, phases.canary.steps[-1]
        case Phase.RAMP_UP:
            return phases.ramp_up.steps[0], phases.ramp_up.steps[-1]
        case Phase.FULL:
            return 100, 100
