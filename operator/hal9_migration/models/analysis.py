"""How gates and rollback triggers are measured: the Prometheus to query, the signal queries and
the extra checks of one's own."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, StrictInt, model_validator

from .common import DNS1123Subdomain, Duration, Model, SecretKeyRef, cel, k8s, require_unique

_URL_MESSAGE = "must be an http:// or https:// URL with a host, e.g. http://prometheus.monitoring:9090"


class BasicAuth(Model):
    """A Secret holding a user name and a password for HTTP basic authentication."""

    secret_name: DNS1123Subdomain = Field(
        description="Secret in the migration's namespace (the operator reads it; it never appears in status)."
    )
    username_key: str = Field(
        "username",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key of the Secret holding the user name.",
    )
    password_key: str = Field(
        "password",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key of the Secret holding the password.",
    )


class PrometheusProvider(Model):
    """The Prometheus the analysis queries, and how to authenticate to it."""

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
    basic_auth: BasicAuth | None = Field(
        None, description="HTTP basic authentication for every query; not together with a bearer token."
    )
    ca_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the PEM CA bundle that signs an https address's certificate."
    )
    timeout: Duration = Field(
        "5s", description="How long one query may take (a duration) before it counts as Inconclusive."
    )

    @model_validator(mode="after")
    def _http_url(self) -> PrometheusProvider:
        parts = urlsplit(self.address)
        if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", self.address):
            raise ValueError(_URL_MESSAGE)
        if self.bearer_token_secret_ref is not None and self.basic_auth is not None:
            raise ValueError("set bearerTokenSecretRef or basicAuth, not both")
        return self


class Inconclusive(StrEnum):
    """What an analysis run without an answer means."""

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

    name: DNS1123Subdomain = Field(
        description="The check's name, unique in the list and none of the built-in checks' names; "
        "status.analysis.checks reports it under this name."
    )
    query: Query = Field(
        description="PromQL returning one number. May use {{ namespace }}, {{ flatService }}, "
        "{{ hierarchicalService }}, {{ flatDeployment }}, {{ hierarchicalDeployment }}, {{ migration }} "
        "and {{ window }}, filled in before it is sent."
    )
    min: float | None = Field(None, description="The value must be at least this (in the query's own unit).")
    max: float | None = Field(None, description="The value must be at most this (in the query's own unit).")

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

    error_rate: Query | None = Field(
        None, description="PromQL for hierarchical's error rate, 0..1; the built-in query if unset."
    )
    p99_ms: Query | None = Field(
        None,
        alias="p99Ms",
        description="PromQL for hierarchical's p99 latency in milliseconds; the built-in query if unset.",
    )
    flat_p99_ms: Query | None = Field(
        None,
        alias="flatP99Ms",
        description="PromQL for flat's p99 latency in milliseconds; the built-in query if unset.",
    )
    cpu_percent: Query | None = Field(
        None,
        description="PromQL for hierarchical's CPU use, in percent of its limit; the built-in query if "
        "unset.",
    )
    memory_percent: Query | None = Field(
        None,
        description="PromQL for hierarchical's memory use, in percent of its limit; the built-in query if "
        "unset.",
    )


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
    """How gates and rollback triggers are measured: Prometheus queries, run every interval."""

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

    prometheus: PrometheusProvider | None = Field(
        None,
        description="The Prometheus to query. Without it every check that needs a metric is "
        "Inconclusive (see inconclusive), so no such gate passes.",
    )
    interval: Duration = Field(
        "1m", description="Time between analysis runs (a duration). Shorter reacts faster to a failure."
    )
    window: Duration | None = Field(
        None,
        description="Range of the rate() windows in the default queries ({{ window }}); the interval if "
        "unset. Cover at least four scrapes.",
    )
    queries: SignalQueries = Field(
        default_factory=SignalQueries,
        description="PromQL replacing the built-in signal queries, for clusters whose metric names or "
        "labels differ.",
        json_schema_extra={"default": {}},
    )
    failure_limit: StrictInt = Field(
        3,
        ge=1,
        le=100,
        description="Consecutive runs with a rollback trigger firing before the operator rolls back; "
        "raise it to ride out short spikes.",
    )
    inconclusive: Inconclusive = Field(
        Inconclusive.PAUSE,
        description="What an empty, NaN or failed query means. Pause: the step holds and never counts as "
        "a pass. Fail: the run counts as failed, towards failureLimit.",
    )
    metrics: list[MetricCheck] = Field(
        default_factory=list,
        max_length=32,
        description="Extra gate checks of your own, each a PromQL query whose value must lie within "
        "[min, max]; every one must pass for a step to pass.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _unique_metric_names(self) -> Analysis:
        require_unique([m.name for m in self.metrics], "analysis.metrics")
        taken = [m.name for m in self.metrics if m.name in RESERVED_CHECK_NAMES]
        if taken:
            raise ValueError(
                f"analysis.metrics: {', '.join(taken)} belongs to the built-in checks "
                f"({', '.join(RESERVED_CHECK_NAMES)}); choose another name"
            )
        return self
