"""The per-phase settings: Shadow (and its proxy), Canary, RampUp and Full; every number defaults to
HAL9's plan (DESIGN §2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, StrictInt, model_validator

from .common import Duration, Model, Percent, Ratio, Steps, cel, k8s


class ShadowMode(StrEnum):
    """How hierarchical gets its copy of the traffic in Shadow."""

    PROXY = "Proxy"  # the operator's shadow proxy sends each request to both and compares the answers
    MIRROR = "Mirror"  # the mesh mirrors requests; the mirrored answers are discarded, nothing compared


_JSON_PATH = r"^[^.\s]+(\.[^.\s]+)*$"
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
JsonPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=_JSON_PATH,
        description="A dotted path into a JSON answer, e.g. meta.requestId.",
    ),
]
HeaderName = Annotated[str, Field(min_length=1, max_length=256, pattern=_HEADER_NAME)]


class ShadowProxy(Model):
    """The shadow proxy the operator runs during Shadow in Proxy mode (the hal9-migration shadow-proxy
    command): callers get flat's answer unchanged; hierarchical's answer to the same request is compared
    with it."""

    image: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Image that runs the proxy; the operator's own image if unset.",
    )
    replicas: StrictInt = Field(
        1,
        ge=1,
        le=20,
        description="Pods of the shadow proxy. Raise it when one pod cannot carry all of flat's traffic "
        "(each request is sent to both systems).",
    )
    port: StrictInt | None = Field(
        None,
        ge=1,
        le=65535,
        description="The Service port of flat and hierarchical the proxy sends to; each Service's first "
        "port if unset.",
    )
    ignore_fields: list[JsonPath] = Field(
        default_factory=list,
        max_length=64,
        description="JSON fields left out of the comparison (timestamps, request ids).",
    )
    confidence_field: JsonPath = Field(
        "confidence",
        description="The JSON field holding an answer's confidence (0..1), compared within "
        "confidenceTolerance instead of exactly.",
    )
    confidence_tolerance: Ratio = Field(
        0.1,
        description="How far apart (absolute, 0..1) the two confidences may be: the same output with "
        "confidences further apart counts as a divergence of 0.5.",
    )
    redact_headers: list[HeaderName] = Field(
        default_factory=list,
        max_length=64,
        description="Headers hidden in the kept divergent samples (Authorization and cookies always are).",
    )
    redact_fields: list[JsonPath] = Field(
        default_factory=list, max_length=64, description="JSON fields hidden in the kept divergent samples."
    )
    shadow_timeout: Duration = Field(
        "1s",
        description="How long hierarchical may take to answer a shadowed request (a duration such as "
        "500ms or 2s); a later answer counts as a timeout divergence.",
    )
    max_in_flight: StrictInt = Field(
        256,
        ge=1,
        le=100000,
        description="Shadowed requests waiting on hierarchical at most; more are shed (not sent) and "
        "counted, so a slow hierarchical never slows flat's answers.",
    )


class ShadowPhase(Model):
    """Phase 1: hierarchical gets a copy of the traffic; flat answers."""

    duration: Duration = Field(
        "7d",
        description="How long Shadow lasts, its gate passing, before Canary may start (a duration: a "
        "number and a unit, ms, s, m, h or d, e.g. 30s, 1h30m, 7d).",
    )
    mode: ShadowMode = Field(
        ShadowMode.PROXY,
        description="Proxy: the operator's shadow proxy compares the answers (output parity is measured). "
        "Mirror: the mesh mirrors requests and parity is not measured.",
    )
    proxy: ShadowProxy = Field(default_factory=ShadowProxy, json_schema_extra={"default": {}})
    mirror_percent: Percent = Field(
        100,
        description="Share of requests, in percent, copied to hierarchical. Lower it while hierarchical "
        "cannot take flat's full load.",
    )
    min_output_parity: Ratio = Field(
        0.99,
        description="Gate: the least share (0..1) of shadowed requests whose answers agree for Shadow "
        "to pass. Measured in Proxy mode only.",
    )
    max_latency_ratio: float = Field(
        1.1,
        gt=0,
        description="Gate: hierarchical's p99 latency divided by flat's may be at most this (1.1 = at "
        "most 10 % slower).",
    )


class CanaryPhase(Model):
    """Phase 2: real traffic shifts to hierarchical in steps."""

    steps: Steps = Field(
        default=[1, 5, 10, 25],
        description="Hierarchical weights in percent, strictly increasing, taken in order; each one's "
        "gate must pass for stepDuration before the next.",
    )
    step_duration: Duration = Field(
        "1d", description="How long each step must stay healthy before the next (a duration, e.g. 1h, 1d)."
    )
    max_error_rate: Ratio = Field(
        0.001,
        description="Gate: hierarchical's error rate (failed requests per request, 0..1) must stay below "
        "this for a step to pass.",
    )
    max_p99_ms: float = Field(
        100,
        gt=0,
        alias="maxP99Ms",
        description="Gate: hierarchical's p99 latency, in milliseconds, must stay below this.",
    )


class RampUpPhase(Model):
    """Phase 4: traffic shifts further, after state migration."""

    steps: Steps = Field(
        default=[50, 75, 90],
        description="Hierarchical weights in percent, strictly increasing, taken in order; the first "
        "must be above the last canary step.",
    )
    step_duration: Duration = Field(
        "1d", description="How long each step must stay healthy before the next (a duration, e.g. 1h, 1d)."
    )
    stable_for: Duration = Field(
        "1h",
        description="Gate: every check must have passed without a break for this long (a duration) "
        "before RampUp ends and Full may start.",
    )
    max_cpu_percent: Percent = Field(
        60, description="Gate: hierarchical's CPU use, in percent of its pods' limit, must stay below this."
    )
    max_memory_percent: Percent = Field(
        70,
        description="Gate: hierarchical's memory use, in percent of its pods' limit, must stay below this.",
    )
    max_latency_ratio: float = Field(
        1.1,
        gt=0,
        description="Gate: hierarchical's p99 latency divided by flat's may be at most this (1.1 = at "
        "most 10 % slower).",
    )


class FullPhase(Model):
    """Phase 5: all traffic on hierarchical; flat stays on standby."""

    flat_standby_replicas: StrictInt = Field(
        1,
        ge=0,
        description="Replicas flat should keep in Full, for a fast way back. Part of HAL9's plan; this "
        "operator version does not scale flat, so keep flat's Deployment at least this large yourself.",
    )
    min_health_score: Ratio = Field(
        0.8, description="Gate: the health score (0..1, see status.health) must be at least this in Full."
    )


class Phases(Model):
    """Per-phase settings; every number defaults to HAL9's plan."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                # has(): the API server also checks this rule against the schema default ({}).
                "!has(self.rampUp) || !has(self.canary) || !has(self.rampUp.steps) "
                "|| !has(self.canary.steps) "
                "|| self.rampUp.steps[0] > self.canary.steps[size(self.canary.steps) - 1]",
                "rampUp.steps must start above the last canary step",
            )
        )
    )

    shadow: ShadowPhase = Field(
        default_factory=ShadowPhase,
        description="Phase 1, Shadow: hierarchical gets a copy of the traffic while flat answers.",
        json_schema_extra={"default": {}},
    )
    canary: CanaryPhase = Field(
        default_factory=CanaryPhase,
        description="Phase 2, Canary: real traffic shifts to hierarchical in small steps.",
        json_schema_extra={"default": {}},
    )
    ramp_up: RampUpPhase = Field(
        default_factory=RampUpPhase,
        description="Phase 4, RampUp: traffic shifts further, after the state migration (phase 3).",
        json_schema_extra={"default": {}},
    )
    full: FullPhase = Field(
        default_factory=FullPhase,
        description="Phase 5, Full: all traffic on hierarchical; flat stays on standby.",
        json_schema_extra={"default": {}},
    )

    @model_validator(mode="after")
    def _ramp_up_above_canary(self) -> Phases:
        if self.ramp_up.steps[0] <= self.canary.steps[-1]:
            raise ValueError("rampUp.steps must start above the last canary step")
        return self
