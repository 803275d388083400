"""The metrics backend a spec names (one today: Prometheus), or the no-op one when it names none."""

from __future__ import annotations

from ..models import Hal9MigrationSpec, parse_duration
from .base import Credentials, MetricProvider
from .noop import NoopProvider
from .prometheus import PrometheusProvider


def provider_for(spec: Hal9MigrationSpec, credentials: Credentials | None = None) -> MetricProvider:
    configured = spec.analysis.prometheus
    if configured is None:
        return NoopProvider(missing="no metrics provider is configured: set spec.analysis.prometheus")
    timeout = parse_duration(configured.timeout).total_seconds()
    return PrometheusProvider(configured.address, timeout, credentials)
