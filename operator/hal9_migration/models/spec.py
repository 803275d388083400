"""The spec: where the migration should be, with every rule a user can break (see the package)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, StrictBool, StrictInt, model_validator

from .common import DNS1035Label, DNS1123Subdomain, Duration, Model, Percent, Phase, Ratio, Steps, cel, k8s


class WorkloadRef(Model):
    """One side of the migration: the Service that receives traffic and the Deployment behind it."""

    service: DNS1035Label = Field(description="Name of the Service in the migration's namespace.")
    deployment: DNS1123Subdomain = Field(description="Name of the Deployment in the migration's namespace.")


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
    """The shadow proxy the operator runs during Shadow in Proxy mode (``hal9-migration shadow-proxy``):
    callers get flat's answer unchanged; hierarchical's answer to the same request is compared with it."""

    image: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Image that runs the proxy; the operator's own image if unset.",
    )
    replicas: StrictInt = Field(1, ge=1, le=20, description="Proxy pods.")
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
    confidence_field: JsonPath = Field("confidence", description="The JSON field holding the confidence.")
    confidence_tolerance: Ratio = Field(
        0.1, description="Same output, confidence further apart than this: divergence 0.5."
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
        "1s", description="How long hierarchical may take; later counts as a timeout divergence."
    )
    max_in_flight: StrictInt = Field(
        256, ge=1, le=100000, description="Shadow requests in flight at most; more are shed and counted."
    )


class ShadowPhase(Model):
    """Phase 1: hierarchical gets a copy of the traffic; flat answers."""

    duration: Duration = Field("7d", description="How long the gate must hold before leaving Shadow.")
    mode: ShadowMode = Field(
        ShadowMode.PROXY,
        description="Proxy: the operator's shadow proxy compares the answers (output parity is measured). "
        "Mirror: the mesh mirrors requests and parity is not measured.",
    )
    proxy: ShadowProxy = Field(default_factory=ShadowProxy, json_schema_extra={"default": {}})
    mirror_percent: Percent = Field(100, description="Share of requests copied to hierarchical.")
    min_output_parity: Ratio = Field(0.99, description="Gate: minimum share of identical outputs.")
    max_latency_ratio: float = Field(1.1, gt=0, description="Gate: hierarchical p99 / flat p99 at most.")


class CanaryPhase(Model):
    """Phase 2: real traffic shifts to hierarchical in steps."""

    steps: Steps = Field(default=[1, 5, 10, 25], description="Hierarchical weights, in order.")
    step_duration: Duration = Field("1d", description="How long each step must stay healthy.")
    max_error_rate: Ratio = Field(0.001, description="Gate: hierarchical error rate below this.")
    max_p99_ms: float = Field(100, gt=0, alias="maxP99Ms", description="Gate: hierarchical p99 latency (ms).")


class RampUpPhase(Model):
    """Phase 4: traffic shifts further, after state migration."""

    steps: Steps = Field(default=[50, 75, 90], description="Hierarchical weights, in order.")
    step_duration: Duration = Field("1d", description="How long each step must stay healthy.")
    stable_for: Duration = Field("1h", description="Gate: all checks pass for this long.")
    max_cpu_percent: Percent = Field(60, description="Gate: hierarchical CPU use below this.")
    max_memory_percent: Percent = Field(70, description="Gate: hierarchical memory use below this.")
    max_latency_ratio: float = Field(1.1, gt=0, description="Gate: hierarchical p99 / flat p99 at most.")


class FullPhase(Model):
    """Phase 5: all traffic on hierarchical; flat stays on standby."""

    flat_standby_replicas: StrictInt = Field(1, ge=0, description="Replicas flat keeps for a fast way back.")
    min_health_score: Ratio = Field(0.8, description="Gate: health score at least this.")


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

    shadow: ShadowPhase = Field(default_factory=ShadowPhase, json_schema_extra={"default": {}})
    canary: CanaryPhase = Field(default_factory=CanaryPhase, json_schema_extra={"default": {}})
    ramp_up: RampUpPhase = Field(default_factory=RampUpPhase, json_schema_extra={"default": {}})
    full: FullPhase = Field(default_factory=FullPhase, json_schema_extra={"default": {}})

    @model_validator(mode="after")
    def _ramp_up_above_canary(self) -> Phases:
        if self.ramp_up.steps[0] <= self.canary.steps[-1]:
            raise ValueError("rampUp.steps must start above the last canary step")
        return self


class StringMatch(Model):
    """How a header value matches: exactly one of exact, prefix, regex."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1",
                "set exactly one of exact, prefix or regex",
            )
        )
    )

    exact: str | None = Field(None, max_length=256)
    prefix: str | None = Field(None, max_length=256)
    regex: str | None = Field(
        None,
        max_length=256,
        description="An RE2 regular expression (the syntax Envoy and Istio use) for the header value.",
        json_schema_extra=k8s(
            # CEL's matches() is RE2 (Go's regexp) and compiles a non-constant pattern when the rule runs:
            # an invalid one makes both sides an error, and an error || an error is an error, which the
            # API server reports with the compiler's words, then this message. A valid pattern makes
            # exactly one side true.
            cel(
                "''.matches(self) || !''.matches(self)",
                "regex must be a valid RE2 regular expression (the syntax Envoy and Istio use)",
            )
        ),
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> StringMatch:
        if [self.exact, self.prefix, self.regex].count(None) != 2:
            raise ValueError("set exactly one of exact, prefix or regex")
        return self

    @model_validator(mode="after")
    def _regex_is_re2(self) -> StringMatch:
        # google-re2 is the C++ RE2 that Envoy compiles route regexes with, so what passes here is what
        # the mesh accepts (Python's re accepts lookarounds and backreferences that RE2 refuses).
        import re2

        if self.regex is not None:
            options = re2.Options()
            options.log_errors = False  # the error is raised below; RE2 must not also print it
            try:
                re2.compile(self.regex, options)
            except re2.error as error:
                reason = error.args[0].decode(errors="replace") if error.args else "invalid pattern"
                raise ValueError(
                    f"regex must be a valid RE2 regular expression (the syntax Envoy and Istio use): {reason}"
                ) from None
        return self


_HEADER_NAME = r"^[a-z0-9][a-z0-9._-]*$"


class TargetingMatch(Model):
    headers: dict[str, StringMatch] = Field(
        min_length=1,
        max_length=16,
        description="Request headers (lowercase names) that must all match.",
        json_schema_extra=k8s(
            cel(
                f"self.all(name, size(name) <= 256 && name.matches('{_HEADER_NAME}'))",
                "header names must be lowercase HTTP header names, e.g. x-hal9-user-group",
            )
        ),
    )

    @model_validator(mode="after")
    def _lowercase_header_names(self) -> TargetingMatch:
        bad = [name for name in self.headers if not re.fullmatch(_HEADER_NAME, name) or len(name) > 256]
        if bad:
            raise ValueError(
                f"header names must be lowercase HTTP header names, e.g. x-hal9-user-group: {bad}"
            )
        return self


class Route(StrEnum):
    HIERARCHICAL = "Hierarchical"
    FLAT = "Flat"


class TargetingRule(Model):
    """A feature-flag rule: requests that match go to one system regardless of the weights."""

    name: DNS1123Subdomain
    match: TargetingMatch
    route: Route


class IstioRouter(Model):
    virtual_service: DNS1123Subdomain = Field(description="VirtualService in the migration's namespace.")
    routes: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=16,
        description="Named HTTP routes to manage; empty means every route.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _unique_routes(self) -> IstioRouter:
        _require_unique(self.routes, "istio.routes")
        return self


class GatewayAPIRouter(Model):
    http_route: DNS1123Subdomain = Field(
        alias="httpRoute", description="HTTPRoute in the migration's namespace."
    )
    rules: list[DNS1123Subdomain] = Field(
        default_factory=list,
        max_length=16,
        description="Named rules to manage; empty means every rule with a backendRef to either Service.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _unique_rules(self) -> GatewayAPIRouter:
        _require_unique(self.rules, "gatewayAPI.rules")
        return self


class SMIRouter(Model):
    traffic_split: DNS1123Subdomain = Field(description="TrafficSplit in the migration's namespace.")


class TrafficRouter(Model):
    """The mesh object whose weights the operator sets: exactly one."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "[has(self.istio), has(self.gatewayAPI), has(self.smi)].filter(x, x).size() == 1",
                "set exactly one traffic router: istio, gatewayAPI or smi",
            )
        )
    )

    istio: IstioRouter | None = None
    gateway_api: GatewayAPIRouter | None = Field(None, alias="gatewayAPI")
    smi: SMIRouter | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TrafficRouter:
        if [self.istio, self.gateway_api, self.smi].count(None) != 2:
            raise ValueError("set exactly one traffic router: istio, gatewayAPI or smi")
        return self


_URL_MESSAGE = "must be an http:// or https:// URL with a host, e.g. http://prometheus.monitoring:9090"


class BasicAuth(Model):
    """A Secret holding a user name and a password for HTTP basic authentication."""

    secret_name: DNS1123Subdomain
    username_key: str = Field("username", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    password_key: str = Field("password", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class PrometheusProvider(Model):
    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "!has(self.bearerTokenSecretRef) || !has(self.basicAuth)",
                "set bearerTokenSecretRef or basicAuth, not both",
            )
        )
    )

    address: str = Field(
        max_length=2048,
        description="Base URL of the Prometheus HTTP API.",
        json_schema_extra=k8s(
            cel(
                "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHost() != ''",
                _URL_MESSAGE,
            )
        ),
    )
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding a bearer token sent with every query."
    )
    basic_auth: BasicAuth | None = None
    ca_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the PEM CA bundle that signs an https address's certificate."
    )
    timeout: Duration = Field("5s", description="How long one query may take before it is Inconclusive.")

    @model_validator(mode="after")
    def _http_url(self) -> PrometheusProvider:
        parts = urlsplit(self.address)
        if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", self.address):
            raise ValueError(_URL_MESSAGE)
        if self.bearer_token_secret_ref is not None and self.basic_auth is not None:
            raise ValueError("set bearerTokenSecretRef or basicAuth, not both")
        return self


class Inconclusive(StrEnum):
    PAUSE = "Pause"
    FAIL = "Fail"


# The variables a query may use, filled in by ``analysis.signals.render``.
QUERY_VARIABLES = (
    "namespace",
    "flatService",
    "hierarchicalService",
    "flatDeployment",
    "hierarchicalDeployment",
    "migration",
    "window",
)
_VARIABLE = re.compile(r"\{\{ *([^}]*?) *\}\}")
# The CEL rule below, in Python: every "{{" opens a known variable.
_QUERY_TEXT = "^([^{]|[{][^{]|[{][{][ ]*(" + "|".join(QUERY_VARIABLES) + ")[ ]*[}][}])*[{]?$"


def _known_variables(query: str) -> str:
    if re.match(_QUERY_TEXT, query):
        return query
    unknown = sorted({v for v in _VARIABLE.findall(query) if v not in QUERY_VARIABLES})
    what = f"unknown query variable {', '.join(unknown)}" if unknown else "a {{ that opens no variable"
    raise ValueError(f"{what}; known: {', '.join(QUERY_VARIABLES)}")


Query = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        json_schema_extra=k8s(
            cel(
                # One linear regex (findAll() over 4096 characters is over the CEL cost budget): every
                # "{{" must open a known variable.
                f"self.matches(r'{_QUERY_TEXT}')",
                "unknown query variable; known: " + ", ".join(QUERY_VARIABLES),
            )
        ),
    ),
    AfterValidator(_known_variables),
]


class MetricCheck(Model):
    """An extra PromQL check: the value must lie within [min, max]."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel("has(self.min) || has(self.max)", "set min, max or both"),
            cel("!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max"),
        )
    )

    name: DNS1123Subdomain
    query: Query
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> MetricCheck:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class SignalQueries(Model):
    """PromQL replacing a default signal query (``analysis/signals.py`` has the defaults), for clusters
    whose metric names or labels differ. The same ``{{ variables }}`` as in ``metrics`` apply."""

    error_rate: Query | None = Field(None, description="Hierarchical error rate, 0..1.")
    p99_ms: Query | None = Field(None, alias="p99Ms", description="Hierarchical p99 latency in ms.")
    flat_p99_ms: Query | None = Field(None, alias="flatP99Ms", description="Flat p99 latency in ms.")
    cpu_percent: Query | None = Field(None, description="Hierarchical CPU use, percent of its limit.")
    memory_percent: Query | None = Field(None, description="Hierarchical memory use, percent of its limit.")


# The names of HAL9's own checks in status.analysis; a user's check may not take one.
RESERVED_CHECK_NAMES = (
    "error-rate",
    "p99-ms",
    "flat-p99-ms",
    "cpu-percent",
    "memory-percent",
    "latency-ratio",
    "health-score",
    "output-parity",
)


class Analysis(Model):
    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "!has(self.metrics) || self.metrics.all(m, !(m.name in "
                + str(list(RESERVED_CHECK_NAMES))
                + "))",
                "analysis.metrics: these names belong to the built-in checks: "
                + ", ".join(RESERVED_CHECK_NAMES),
            )
        )
    )

    prometheus: PrometheusProvider | None = None
    interval: Duration = Field("1m", description="Time between analysis runs.")
    window: Duration | None = Field(
        None,
        description="Range of the rate() windows in the default queries ({{ window }}); the interval if "
        "unset. Cover at least four scrapes.",
    )
    queries: SignalQueries = Field(default_factory=SignalQueries, json_schema_extra={"default": {}})
    failure_limit: StrictInt = Field(
        3, ge=1, le=100, description="Consecutive failed runs before rolling back."
    )
    inconclusive: Inconclusive = Field(
        Inconclusive.PAUSE, description="What an empty, NaN or failed query means: Pause or Fail."
    )
    metrics: list[MetricCheck] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _unique_metric_names(self) -> Analysis:
        _require_unique([m.name for m in self.metrics], "analysis.metrics")
        taken = [m.name for m in self.metrics if m.name in RESERVED_CHECK_NAMES]
        if taken:
            raise ValueError(
                f"analysis.metrics: {', '.join(taken)} belongs to the built-in checks "
                f"({', '.join(RESERVED_CHECK_NAMES)}); choose another name"
            )
        return self


class SecretKeyRef(Model):
    name: DNS1123Subdomain
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class DatabaseRef(Model):
    """A database, by a Secret key holding its URL (URLs carry passwords, so never inline)."""

    url_secret_ref: SecretKeyRef


_DISTINCT_DATABASES = "source and target must be different databases (they name the same Secret key)"


# A Kubernetes resource quantity, in the API server's own grammar: 500m, 1.5, 256Mi, 1e3.
_QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"  # a number
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"  # a suffix
)
Quantity = Annotated[str, Field(min_length=1, max_length=32, pattern=_QUANTITY)]


class WorkerRequests(Model):
    cpu: Quantity | None = "250m"
    memory: Quantity | None = "256Mi"


class WorkerLimits(Model):
    cpu: Quantity | None = None
    memory: Quantity | None = "1Gi"


class WorkerResources(Model):
    """A worker container's resources. The defaults suit one worker process (about 100 MiB at its
    peak); each whole CPU of the limit (else the request) beyond one adds a converter process of
    about 80 MiB (statejob.converters)."""

    requests: WorkerRequests = Field(default_factory=WorkerRequests, json_schema_extra={"default": {}})
    limits: WorkerLimits = Field(default_factory=WorkerLimits, json_schema_extra={"default": {}})


class StateMigration(Model):
    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "self.source.urlSecretRef.name != self.target.urlSecretRef.name "
                "|| self.source.urlSecretRef.key != self.target.urlSecretRef.key",
                _DISTINCT_DATABASES,
            )
        )
    )

    image: str = Field(min_length=1, max_length=1024, description="Image that runs the migration worker.")
    source: DatabaseRef
    target: DatabaseRef
    batch_size: StrictInt = Field(
        1000, ge=1, le=100_000, description="Rows per transaction (with a checkpoint)."
    )
    workers: StrictInt = Field(
        4, ge=1, le=64, description="Indexes of the Indexed Job: one shard of the neuron ids each."
    )
    max_failed_rows: StrictInt = Field(
        0,
        ge=0,
        description="Rows that may fail validation (and stay behind, listed in migration_failures) "
        "before the phase fails instead of passing.",
    )
    backoff_limit_per_index: StrictInt = Field(
        2, ge=0, le=20, description="Retries of one shard's pod before the Job fails."
    )
    active_deadline: Duration | None = Field(
        None, description="Longest the Job may run (its activeDeadlineSeconds); none when unset."
    )
    resources: WorkerResources = Field(
        default_factory=WorkerResources,
        description="Each worker pod's container resources. Its whole CPUs (the limit, else the "
        "request; at least 1) are the processes converting that worker's shard, about 80 MiB each.",
        json_schema_extra={"default": {}},
    )

    @model_validator(mode="after")
    def _distinct_databases(self) -> StateMigration:
        if self.source.url_secret_ref == self.target.url_secret_ref:
            raise ValueError(_DISTINCT_DATABASES)
        return self


class RollbackStrategy(StrEnum):
    IMMEDIATE = "Immediate"
    GRADUAL = "Gradual"
    PARTIAL = "Partial"


class GradualRollback(Model):
    step_percent: StrictInt = Field(10, ge=1, le=100)
    step_interval: Duration = "30s"


class RollbackComponent(StrEnum):
    ROUTING = "routing"
    TARGETING = "targeting"
    STATE = "state"


class PartialRollback(Model):
    components: list[RollbackComponent] = Field(
        min_length=1, max_length=3, json_schema_extra={"x-kubernetes-list-type": "set"}
    )

    @model_validator(mode="after")
    def _unique(self) -> PartialRollback:
        _require_unique(self.components, "rollback.partial.components")
        return self


class Rollback(Model):
    model_config = ConfigDict(
        json_schema_extra=k8s(
            cel(
                "!has(self.strategy) || self.strategy != 'Partial' || has(self.partial)",
                "strategy Partial needs partial.components",
            )
        )
    )

    strategy: RollbackStrategy = RollbackStrategy.IMMEDIATE
    automatic: StrictBool = Field(True, description="Roll back by itself when a trigger fires.")
    max_error_rate: Ratio = Field(0.05, description="Trigger: hierarchical error rate above this.")
    min_health_score: Ratio = Field(0.8, description="Trigger: health score below this.")
    gradual: GradualRollback = Field(default_factory=GradualRollback, json_schema_extra={"default": {}})
    partial: PartialRollback | None = None

    @model_validator(mode="after")
    def _partial_needs_components(self) -> Rollback:
        if self.strategy is RollbackStrategy.PARTIAL and self.partial is None:
            raise ValueError("strategy Partial needs partial.components")
        return self


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
    target_phase: Phase = Field(description="Drive to this phase and hold there.")
    traffic_split: Percent | None = Field(
        None, description="Optional cap on the hierarchical weight inside targetPhase."
    )
    paused: StrictBool = Field(False, description="Hold where the migration is; take no step.")
    rehearsal: StrictBool = Field(
        False,
        description="A dry run against the live cluster: walk the whole plan, evaluating every gate on "
        "real metrics at each would-be step, but write nothing to the route object, create no "
        "state-migration Job and run no shadow proxy; history records each step it would have taken. "
        "It starts where the migration stands; setting it back to false resumes from the route object.",
        # Left out of dumps while false: the spec hash of a migration that never rehearses stays as it was.
        exclude_if=lambda rehearsal: not rehearsal,
    )
    phases: Phases = Field(default_factory=Phases, json_schema_extra={"default": {}})
    targeting: list[TargetingRule] = Field(
        default_factory=list,
        max_length=32,
        description="Feature-flag targeting rules; the first that matches wins.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    traffic_router: TrafficRouter
    analysis: Analysis = Field(default_factory=Analysis, json_schema_extra={"default": {}})
    state_migration: StateMigration | None = None
    rollback: Rollback = Field(default_factory=Rollback, json_schema_extra={"default": {}})
    progress_deadline: Duration = Field("30m", description="A step that cannot finish in this time stalls.")

    @model_validator(mode="after")
    def _cross_field(self) -> Hal9MigrationSpec:
        _require_unique([t.name for t in self.targeting], "targeting")
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


def _require_unique(values: list[Any], where: str) -> None:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"{where}: duplicate entries {sorted(set(map(str, seen)))}")
