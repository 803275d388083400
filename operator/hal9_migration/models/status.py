"""The status: what the operator observed and did; people and GitOps tools read it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import Percent, Phase, StatusModel

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A condition in the standard Kubernetes shape (metav1.Condition)."""

    type: str = Field(max_length=316)
    status: ConditionStatus
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field("", max_length=32768)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(None, ge=0)


Verdict = Literal["Pass", "Fail", "Inconclusive"]


class CheckResult(StatusModel):
    """One check of an analysis run: the query as sent, what it returned, and what that means."""

    name: str
    query: str = ""
    value: float | None = None
    verdict: Verdict
    reason: str = ""


class AnalysisStatus(StatusModel):
    """The last analysis run: gate checks (they hold a step) and rollback triggers (they revert)."""

    last_run_time: str | None = None
    at: str | None = Field(None, description="The position the last run measured.")
    step_since: str | None = Field(None, description="When that position was taken (the run's step).")
    verdict: Verdict | None = Field(None, description="The gate checks together.")
    message: str | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    triggers: list[CheckResult] = Field(
        default_factory=list, description="Rollback triggers: Fail means firing."
    )
    consecutive_failures: int = Field(0, description="Runs in a row with a trigger firing.")
    passing_since: str | None = Field(None, description="Since when every run of this step passed.")
    notes: list[str] = Field(default_factory=list)


class FailedRowStatus(StatusModel):
    id: str
    validator: str
    reason: str


class StateMigrationStatus(StatusModel):
    """The state-migration Job and what its workers reported (from the target's bookkeeping tables)."""

    job_name: str | None = None
    attempt: int = Field(1, ge=1, description="Raised by each retry after a failure: a new Job resumes.")
    shards: int | None = None
    state: str | None = None  # Pending | Running | Verifying | Verified | Failed | Stopped
    total: int | None = None
    migrated: int | None = None
    failed: int | None = None
    percent: int | None = Field(None, ge=0, le=100)
    rate: float | None = None  # rows per second, all shards together
    eta_seconds: int | None = None
    last_checkpoint: str | None = None  # when a worker last committed a batch
    validation: str | None = None  # the NoDataLoss verdict, with counts
    failed_indexes: str | None = None
    last_error: str | None = None  # the failing worker's last log line (never a URL's password)
    first_failures: list[FailedRowStatus] = Field(default_factory=list)
    message: str | None = None


class HealthStatus(StatusModel):
    """The health score of DESIGN §2 and its inputs; an input that was not measured is absent."""

    score: float | None = Field(None, ge=0, le=1)
    error_rate: float | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    parity: float | None = None
    reason: str | None = Field(None, description="What was not measured, and what that means for the score.")
    baseline: float | None = Field(
        None, description="The score when the current walk back began (Gradual turns Immediate below it)."
    )


class RollbackStatus(StatusModel):
    """The last automatic rollback: why, to where, and the spec that failed (held off until it changes
    or a retry)."""

    time: str
    reason: str
    message: str = ""
    failed_spec_hash: str
    failed_generation: int
    to_phase: Phase | None = None
    to_step: int = 0
    to_weight: int = 0
    to_mirror: int = 0
    strategy: str = ""
    escalated: bool = Field(False, description="A Gradual walk turned Immediate as health kept falling.")
    retried_by: str | None = Field(None, description="Who allowed the failed spec again with retry.")
    rehearsal: bool = Field(
        False,
        description="Only rehearsed: nothing was rolled back; dropped when the rehearsal ends.",
        exclude_if=lambda rehearsal: not rehearsal,
    )


class ShadowStatus(StatusModel):
    """The shadow proxy during Shadow in Proxy mode: whether traffic goes through it, and why not."""

    mode: str = Field(description="Proxy or Mirror.")
    proxy: str | None = Field(None, description="The proxy's Deployment and Service.")
    ready: bool = Field(False, description="The proxy has a ready endpoint.")
    routed: bool = Field(False, description="The route object sends flat's share through the proxy.")
    message: str = ""


class Snapshot(StatusModel):
    time: str
    phase: Phase | None = None
    weight: int | None = None
    spec: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    targeting: list[dict[str, Any]] = Field(
        default_factory=list, json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}}
    )
    rehearsal: bool = Field(
        False,
        description="Taken by a rehearsal: the route object never left this phase; dropped when it ends.",
        exclude_if=lambda rehearsal: not rehearsal,
    )


class HistoryEntry(StatusModel):
    time: str
    from_phase: Phase | None = Field(None, alias="from")
    to_phase: Phase | None = Field(None, alias="to")
    weight: int | None = None
    reason: str
    message: str = ""
    actor: str = "operator"


class PositionRecord(StatusModel):
    """Where the route object stands, as the operator last wrote it.

    The same record goes onto the route object (an annotation, in the same write as the weights), so
    a restarted operator knows the position even when the status write after it never landed.
    ``phase`` is absent before Shadow: the migration has not started, or was aborted to all-flat.
    """

    phase: Phase | None = None
    step: int = Field(0, ge=0)
    weight: Percent = 0
    mirror: Percent = 0
    since: str = Field(description="When the route object took this position (RFC 3339, milliseconds).")
    reason: str = ""
    actor: str = "operator"
    control: str | None = Field(None, description="The control annotation (verb=value) behind this move.")
    held: list[str] = Field(
        default_factory=list, description="Components a Partial rollback left as they were."
    )
    generation: int | None = Field(None, description="The spec generation this move was made for.")
    rehearsal: bool = Field(
        False,
        description="This position was only rehearsed: the route object never held it.",
        exclude_if=lambda rehearsal: not rehearsal,  # absent from real records, as before rehearsals
    )


class GateStatus(StatusModel):
    """The gate the current step waits on, and since when."""

    name: str
    verdict: Verdict
    reason: str = ""
    since: str


class Halt(StatusModel):
    """A stop that only a person ends: a ``retry`` annotation or a new spec generation."""

    reason: str
    message: str = ""
    generation: int
    time: str
    spec_hash: str | None = Field(
        None, description="RolledBack: the failed spec; only a spec with another hash ends the stop."
    )


class ControlsStatus(StatusModel):
    """What the control annotations have set, and which ones were acted on."""

    paused_by: str | None = Field(None, description="Who paused the migration with the pause annotation.")
    # verb -> annotation value acted on; kept until the annotation is seen gone, so an annotation
    # whose removal was lost (a crash) is never acted on twice.
    consumed: dict[str, str] = Field(default_factory=dict)


class Hal9MigrationStatus(StatusModel):
    """What the operator observed and did; people and GitOps tools read this."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    phase: Phase | None = None
    step: int | None = None
    weight: Percent | None = None
    mirror_percent: Percent | None = None
    position: PositionRecord | None = None
    gate: GateStatus | None = None
    halt: Halt | None = None
    controls: ControlsStatus | None = None
    analysis: AnalysisStatus | None = None
    state_migration: StateMigrationStatus | None = None
    health: HealthStatus | None = None
    rollback: RollbackStatus | None = None
    shadow: ShadowStatus | None = None
    snapshots: list[Snapshot] = Field(default_factory=list, max_length=20)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=100)
