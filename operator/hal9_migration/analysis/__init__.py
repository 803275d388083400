"""Metric analysis: HAL9's signals as PromQL, a provider per backend behind one Protocol, and what a
run's numbers mean for the gates, the rollback triggers and the health score.

Only ``prometheus`` does I/O (an HTTP GET per query); the rest is pure and unit-tested.
"""

from .base import Credentials, MetricProvider, Sample
from .factory import provider_for
from .noop import NoopProvider
from .runs import Merged, Notice, Request, Run, configured, due, measure, merge, next_run
from .verdicts import Evaluation, Measured

__all__ = [
    "Credentials",
    "Evaluation",
    "Measured",
    "Merged",
    "MetricProvider",
    "NoopProvider",
    "Notice",
    "Request",
    "Run",
    "Sample",
    "configured",
    "due",
    "measure",
    "merge",
    "next_run",
    "provider_for",
]
