"""The status: what the operator observed and did; people and GitOps tools read it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import Percent, Phase, StatusModel

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A condition in the standard Kubernetes shape (metav1.Condition)."""

    type: str = Field(
        max_length=316,
        description="The condition's type, one of Ready (target reached and healthy), Reconciling "
        "(moving), Stalled (cannot move without a person), Degraded or Paused.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Why the condition is as it is, one CamelCase word for programs (e.g. RolledBack).",
    )
    message: str = Field(
        "", max_length=32768, description="Why the condition is as it is, in words for people."
    )
    last_transition_time: str = Field(
        description="When the condition last changed status (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation of the spec this condition was set for."
    )


Verdict = Literal["Pass", "Fail", "Inconclusive"]


class CheckResult(StatusModel):
    """One check of an analysis run: the query as sent, what it returned, and what that means."""

    name: str = Field(
        description="The check's name: a built-in one (e.g. error-rate) or one of spec.analysis.metrics."
    )
    query: str = Field("", description="The PromQL as sent, its variables filled in.")
    value: float | None = Field(None, description="What the query returned; absent when it returned nothing.")
    verdict: Verdict = Field(
        description="Pass, Fail or Inconclusive (no series, NaN or an error: never counts as a pass)."
    )
    reason: str = Field("", description="The value against its bound, or why there is no value.")


class AnalysisStatus(StatusModel):
    """The last analysis run: gate checks (they hold a step) and rollback triggers (they revert)."""

    last_run_time: str | None = Field(None, description="When the last analysis run happened (RFC 3339).")
    at: str | None = Field(None, description="The position the last run measured.")
    step_since: str | None = Field(None, description="When that position was taken (the run's step).")
    verdict: Verdict | None = Field(None, description="The gate checks together.")
    message: str | None = Field(None, description="The run's outcome in words.")
    checks: list[CheckResult] = Field(
        default_factory=list,
        description="The gate checks of the last run: a Fail or Inconclusive holds the step.",
    )
    triggers: list[CheckResult] = Field(
        default_factory=list, description="Rollback triggers: Fail means firing."
    )
    consecutive_failures: int = Field(0, description="Runs in a row with a trigger firing.")
    passing_since: str | None = Field(None, description="Since when every run of this step passed.")
    notes: list[str] = Field(
        default_factory=list, description="What the verdicts leave out, e.g. output parity not measured."
    )


class FailedRowStatus(StatusModel):
    """A neuron state that failed validation and stayed behind."""

    id: str = Field(description="The neuron id of the row.")
    validator: str = Field(description="The validator that refused it: schema, integrity or consistency.")
    reason: str = Field(description="Why it was refused.")


class StateMigrationStatus(StatusModel):
    """The state-migration Job and what its workers reported (from the target's bookkeeping tables)."""

    job_name: str | None = Field(None, description="The current attempt's Indexed Job.")
    attempt: int = Field(1, ge=1, description="Raised by each retry after a failure: a new Job resumes.")
    shards: int | None = Field(None, description="Shards of the neuron ids: one worker pod each.")
    state: str | None = Field(None, description="Pending, Running, Verified, Failed or Stopped.")
    total: int | None = Field(None, description="Neuron states in the source.")
    migrated: int | None = Field(None, description="Neuron states converted and committed to the target.")
    failed: int | None = Field(None, description="Neuron states that failed validation and stayed behind.")
    percent: int | None = Field(None, ge=0, le=100, description="migrated of total, in percent.")
    rate: float | None = Field(None, description="Rows migrated per second, all shards together.")
    eta_seconds: int | None = Field(None, description="Seconds left at the current rate.")
    last_checkpoint: str | None = Field(None, description="When a worker last committed a batch (RFC 3339).")
    validation: str | None = Field(
        None, description="The NoDataLoss verdict with its counts: the phase passes only on a match."
    )
    failed_indexes: str | None = Field(None, description="The Job's indexes (shards) that failed, e.g. 1,3.")
    last_error: str | None = Field(
        None, description="The failing worker's last log line (a database URL's password never shows)."
    )
    first_failures: list[FailedRowStatus] = Field(
        default_factory=list, description="The first rows that failed validation, with the validator and why."
    )
    message: str | None = Field(None, description="The state migration's progress in words.")


class HealthStatus(StatusModel):
    """The health score of DESIGN §2 and its inputs; an input that was not measured is absent."""

    score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="0..1, from hierarchical's error rate, CPU, memory and output parity; rollback "
        "triggers and the Full gate compare it with their minimum.",
    )
    error_rate: float | None = Field(
        None, description="Hierarchical's error rate (0..1) that went into the score."
    )
    cpu_percent: float | None = Field(None, description="Hierarchical's CPU use, percent of its limit.")
    memory_percent: float | None = Field(None, description="Hierarchical's memory use, percent of its limit.")
    parity: float | None = Field(None, description="The share (0..1) of shadowed answers that agreed.")
    reason: str | None = Field(None, description="What was not measured, and what that means for the score.")
    baseline: float | None = Field(
        None, description="The score when the current walk back began (Gradual turns Immediate below it)."
    )


class RollbackStatus(StatusModel):
    """The last automatic rollback: why, to where, and the spec that failed (held off until it changes
    or a retry)."""

    time: str = Field(description="When the operator rolled back (RFC 3339).")
    reason: str = Field(description="The triggers that fired, comma-separated (e.g. error-rate).")
    message: str = Field("", description="What each trigger measured.")
    failed_spec_hash: str = Field(
        description="Hash of the spec that failed: applying it again (a GitOps re-sync) does not advance."
    )
    failed_generation: int = Field(description="The metadata.generation of the spec that failed.")
    to_phase: Phase | None = Field(None, description="The phase rolled back to; absent means before Shadow.")
    to_step: int = Field(0, description="The step rolled back to.")
    to_weight: int = Field(0, description="The hierarchical weight, in percent, rolled back to.")
    to_mirror: int = Field(0, description="The mirrored share, in percent, rolled back to.")
    strategy: str = Field("", description="The strategy of the walk back: Immediate, Gradual or Partial.")
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
    message: str = Field("", description="Why traffic does not go through the proxy yet, if it does not.")


class Snapshot(StatusModel):
    """The spec as it was when a phase started, kept to roll back to."""

    time: str = Field(description="When the snapshot was taken (RFC 3339).")
    phase: Phase | None = Field(None, description="The phase the route object held; absent before Shadow.")
    weight: int | None = Field(
        None, description="The hierarchical weight, in percent, the route object held."
    )
    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="The spec the operator acted on then; an automatic rollback acts on it again.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    targeting: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The targeting rules in force then.",
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    rehearsal: bool = Field(
        False,
        description="Taken by a rehearsal: the route object never left this phase; dropped when it ends.",
        exclude_if=lambda rehearsal: not rehearsal,
    )


class HistoryEntry(StatusModel):
    """One move of the migration; each is also a Kubernetes Event."""

    time: str = Field(description="When it happened (RFC 3339).")
    from_phase: Phase | None = Field(
        None, alias="from", description="The phase before; absent before Shadow."
    )
    to_phase: Phase | None = Field(
        None, alias="to", description="The phase after; absent when back before Shadow."
    )
    weight: int | None = Field(None, description="The hierarchical weight, in percent, after the move.")
    reason: str = Field(description="Why, one CamelCase word (e.g. Advanced, RolledBack).")
    message: str = Field("", description="What happened, in words.")
    actor: str = Field(
        "operator", description="Who made the move: the operator, or the person behind a control annotation."
    )


class PositionRecord(StatusModel):
    """Where the route object stands, as the operator last wrote it.

    The same record goes onto the route object (an annotation, in the same write as the weights), so
    a restarted operator knows the position even when the status write after it never landed.
    ``phase`` is absent before Shadow: the migration has not started, or was aborted to all-flat.
    """

    phase: Phase | None = Field(
        None, description="The phase; absent before Shadow (not started, or aborted to all-flat)."
    )
    step: int = Field(0, ge=0, description="The step within the phase, from 1; 0 before Shadow.")
    weight: Percent = Field(0, description="The hierarchical weight, in percent.")
    mirror: Percent = Field(0, description="The share of requests mirrored to hierarchical, in percent.")
    since: str = Field(description="When the route object took this position (RFC 3339, milliseconds).")
    reason: str = Field("", description="Why the route object took it, one CamelCase word.")
    actor: str = Field(
        "operator", description="Who moved it: the operator, or the person behind a control annotation."
    )
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

    name: str = Field(description="The gate's name: time, analysis, state-migration or shadow-proxy.")
    verdict: Verdict = Field(description="Pass, Fail or Inconclusive, at the last look.")
    reason: str = Field("", description="What the step still waits for, in words.")
    since: str = Field(
        description="Since when the step waits on this gate (RFC 3339); progressDeadline counts from here."
    )


class Halt(StatusModel):
    """A stop that only a person ends: a ``retry`` annotation or a new spec generation."""

    reason: str = Field(
        description="Why the migration stopped, one CamelCase word (e.g. ProgressDeadlineExceeded, Aborted)."
    )
    message: str = Field("", description="Why, in words, and what to do.")
    generation: int = Field(description="The spec generation the stop happened at.")
    time: str = Field(description="When it stopped (RFC 3339).")
    spec_hash: str | None = Field(
        None, description="RolledBack: the failed spec; only a spec with another hash ends the stop."
    )


class ControlsStatus(StatusModel):
    """What the control annotations have set, and which ones were acted on."""

    paused_by: str | None = Field(None, description="Who paused the migration with the pause annotation.")
    # verb -> annotation value acted on; kept until the annotation is seen gone, so an annotation
    # whose removal was lost (a crash) is never acted on twice.
    consumed: dict[str, str] = Field(
        default_factory=dict,
        description="Control annotations acted on (verb to value), kept until the annotation is gone, so "
        "none is acted on twice.",
    )


class Hal9MigrationStatus(StatusModel):
    """What the operator observed and did; people and GitOps tools read this."""

    observed_generation: int | None = Field(
        None,
        description="The metadata.generation the operator last acted on; -1 until an operator has seen "
        "the migration.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Standard conditions (Ready, Reconciling, Stalled, Degraded, Paused) that kstatus, "
        "Flux, Helm --wait and kubectl wait read.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    phase: Phase | None = Field(
        None, description="The phase the route object is in now; absent before Shadow."
    )
    step: int | None = Field(None, description="The step within the phase, from 1.")
    weight: Percent | None = Field(
        None, description="The hierarchical weight, in percent, on the route object."
    )
    mirror_percent: Percent | None = Field(
        None, description="The share of requests mirrored to hierarchical, in percent."
    )
    position: PositionRecord | None = Field(
        None, description="Where the route object stands, as the operator last wrote it."
    )
    gate: GateStatus | None = Field(None, description="The gate the current step waits on, and since when.")
    halt: Halt | None = Field(
        None, description="A stop only a person ends (a retry annotation or a new spec); absent when moving."
    )
    controls: ControlsStatus | None = Field(
        None, description="What the control annotations (pause, resume, promote, abort, retry) set."
    )
    analysis: AnalysisStatus | None = Field(None, description="The last analysis run.")
    state_migration: StateMigrationStatus | None = Field(
        None, description="The state-migration Job's progress and verdict (phase 3)."
    )
    health: HealthStatus | None = Field(None, description="The health score and its inputs.")
    rollback: RollbackStatus | None = Field(None, description="The last automatic rollback.")
    shadow: ShadowStatus | None = Field(None, description="The shadow proxy, during Shadow in Proxy mode.")
    snapshots: list[Snapshot] = Field(
        default_factory=list,
        max_length=20,
        description="The spec at the start of each phase, newest last (at most 20); automatic rollback "
        "returns to one.",
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=100,
        description="The audit trail of moves, newest last (at most 100); each is also an Event.",
    )
