"""What an analysis run asks the metrics backend (pure): HAL9's signals and the user's checks, as
PromQL with the migration's namespace, Services, Deployments and window filled in.

The defaults read HAL9's own metric names (``hal9_requests_total``, ``hal9_errors_total`` and
``hal9_request_duration_seconds`` by ``system``) and, for CPU and memory, cAdvisor's container
metrics over kube-state-metrics' limits, the usual pair in a cluster. ``spec.analysis.queries``
replaces any of them where a cluster's names or labels differ.

In Shadow with the shadow proxy (``phases.shadow.mode: Proxy``), the proxy measures both systems
from the same place: output parity is its divergence score over the requests it compared, and both
p99 latencies are its own per-system histograms (so the latency ratio compares like with like).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..models import Hal9MigrationSpec, parse_duration

ERROR_RATE = "error-rate"
P99 = "p99-ms"
FLAT_P99 = "flat-p99-ms"
CPU = "cpu-percent"
MEMORY = "memory-percent"
OUTPUT_PARITY = "output-parity"

_HAL9 = '{{namespace="{{{{ namespace }}}}",system="{system}"}}'


def _errors(system: str) -> str:
    selector = _HAL9.format(system=system)
    return (
        f"sum(rate(hal9_errors_total{selector}[{{{{ window }}}}])) / "
        f"sum(rate(hal9_requests_total{selector}[{{{{ window }}}}]))"
    )


def _p99(system: str) -> str:
    selector = _HAL9.format(system=system)
    return (
        "1000 * histogram_quantile(0.99, sum by (le) "
        f"(rate(hal9_request_duration_seconds_bucket{selector}[{{{{ window }}}}])))"
    )


# A Deployment's pods are named <deployment>-<replicaset hash>-<pod suffix>.
_PODS = 'namespace="{{ namespace }}",pod=~"{{ hierarchicalDeployment }}-[a-z0-9]+-[a-z0-9]+"'

DEFAULTS: dict[str, str] = {
    ERROR_RATE: _errors("hierarchical"),
    P99: _p99("hierarchical"),
    FLAT_P99: _p99("flat"),
    CPU: (
        f'100 * sum(rate(container_cpu_usage_seconds_total{{{_PODS},container!=""}}[{{{{ window }}}}])) / '
        f'sum(kube_pod_container_resource_limits{{{_PODS},resource="cpu"}})'
    ),
    MEMORY: (
        f'100 * sum(container_memory_working_set_bytes{{{_PODS},container!=""}}) / '
        f'sum(kube_pod_container_resource_limits{{{_PODS},resource="memory"}})'
    ),
}

_PROXY = 'namespace="{{ namespace }}",migration="{{ migration }}"'


def _proxy_p99(system: str) -> str:
    return (
        "1000 * histogram_quantile(0.99, sum by (le) (rate(hal9_shadow_upstream_duration_seconds_bucket"
        f'{{{_PROXY},system="{system}"}}[{{{{ window }}}}])))'
    )


# The shadow proxy's measurements (``hal9_migration.shadow``), used in Shadow in Proxy mode.
PROXY_DEFAULTS: dict[str, str] = {
    OUTPUT_PARITY: (
        f"1 - sum(increase(hal9_shadow_divergence_score_total{{{_PROXY}}}[{{{{ window }}}}])) / "
        f"sum(increase(hal9_shadow_compared_total{{{_PROXY}}}[{{{{ window }}}}]))"
    ),
    P99: _proxy_p99("hierarchical"),
    FLAT_P99: _proxy_p99("flat"),
}

_VARIABLE = re.compile(r"\{\{ *([A-Za-z]+) *\}\}")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    query: str  # as sent: every variable filled in


def prometheus_duration(text: str) -> str:
    """A spec duration as PromQL reads it (whole seconds; PromQL has no "d" for 7d in all versions)."""
    return f"{max(1, int(parse_duration(text).total_seconds()))}s"


def render(query: str, spec: Hal9MigrationSpec, namespace: str, migration: str) -> str:
    """``query`` with its ``{{ variables }}`` filled in (the models refuse unknown ones)."""
    analysis = spec.analysis
    values = {
        "namespace": namespace,
        "migration": migration,
        "flatService": spec.flat.service,
        "hierarchicalService": spec.hierarchical.service,
        "flatDeployment": spec.flat.deployment,
        "hierarchicalDeployment": spec.hierarchical.deployment,
        "window": prometheus_duration(analysis.window or analysis.interval),
    }
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), query)


def queries(spec: Hal9MigrationSpec, namespace: str, migration: str, proxy: bool = False) -> list[NamedQuery]:
    """Every query of one run: HAL9's five signals (with ``proxy``, parity and the two p99s from the
    shadow proxy), then the user's checks, in order."""
    custom = spec.analysis.queries
    overrides = {
        ERROR_RATE: custom.error_rate,
        P99: custom.p99_ms,
        FLAT_P99: custom.flat_p99_ms,
        CPU: custom.cpu_percent,
        MEMORY: custom.memory_percent,
    }
    chosen = {name: overrides[name] or text for name, text in DEFAULTS.items()}
    if proxy:
        chosen.update(PROXY_DEFAULTS)
    signals = [NamedQuery(name, render(text, spec, namespace, migration)) for name, text in chosen.items()]
    checks = [NamedQuery(m.name, render(m.query, spec, namespace, migration)) for m in spec.analysis.metrics]
    return signals + checks
