"""The proxy's Prometheus metrics: what the Shadow gate reads.

Parity over a window is ``1 - increase(hal9_shadow_divergence_score_total) /
increase(hal9_shadow_compared_total)``; the latency gate compares the p99 of
``hal9_shadow_upstream_duration_seconds`` for the two systems, both timed by the same process on the
same path, so the ratio measures the systems and not two different instruments.

Every series carries ``migration`` (the --migration value), so several proxies scraped by one
Prometheus stay apart. The families live on a private registry (not the process-global one: tests run
several proxies' metrics side by side), and every labelled child is bound here once, so the hot path
never looks a label up and every series exists at 0 from the start (``increase()`` over a series that
appears mid-window undercounts). The two gauges are computed when scraped (``set_function``), which
costs the request path nothing.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .compare import DivergenceKind, Verdict

SYSTEMS = ("flat", "hierarchical")
ERROR_REASONS = ("connect", "reset", "timeout", "malformed")
# Fine below 50 ms, where both systems answer most requests: the p99 ratio gate (1.1) needs buckets
# closer together than 10 % of the p99 to be resolved at all near it, and histogram_quantile
# interpolates linearly inside a bucket.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class ShadowMetrics:
    """The ``hal9_shadow_*`` families with their children bound for one migration."""

    def __init__(self, migration: str) -> None:
        self.registry = CollectorRegistry()
        self.compared_count = 0  # the parity gauge's inputs, read when scraped
        self.score_sum = 0.0
        self.in_flight_count = 0  # kept by the proxy; read when scraped
        labels = ["migration"]

        def counter(name: str, documentation: str) -> Counter:
            return Counter(name, documentation, labels, registry=self.registry)

        self.requests = counter("hal9_shadow_requests", "Requests received from callers").labels(migration)
        self.compared = counter(
            "hal9_shadow_compared", "Pairs compared (hierarchical answered or failed; shed ones are not)"
        ).labels(migration)
        divergences = Counter(
            "hal9_shadow_divergences",
            "Divergent pairs by kind (output, confidence, status, error, timeout)",
            [*labels, "kind"],
            registry=self.registry,
        )
        self.divergences = {kind: divergences.labels(migration, kind.value) for kind in DivergenceKind}
        self.score = counter(
            "hal9_shadow_divergence_score",
            "Sum of divergence scores; parity over a window = 1 - increase(score) / increase(compared)",
        ).labels(migration)
        self.shed = counter(
            "hal9_shadow_shed", "Shadow requests not sent because --max-in-flight were in flight"
        ).labels(migration)
        self.primary_failures = counter(
            "hal9_shadow_primary_failures", "Callers answered 502 because flat failed or timed out"
        ).labels(migration)
        Gauge(
            "hal9_shadow_parity_ratio",
            "1 - divergence score / pairs compared since the proxy started (NaN before the first)",
            labels,
            registry=self.registry,
        ).labels(migration).set_function(self._parity)
        Gauge("hal9_shadow_in_flight", "Shadow requests in flight", labels, registry=self.registry).labels(
            migration
        ).set_function(lambda: self.in_flight_count)
        duration = Histogram(
            "hal9_shadow_upstream_duration_seconds",
            "From sending a request to a system to its full response, as the proxy saw it",
            [*labels, "system"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.upstream_duration = {system: duration.labels(migration, system) for system in SYSTEMS}
        errors = Counter(
            "hal9_shadow_upstream_errors",
            "Requests to a system that got no proper response, by reason",
            [*labels, "system", "reason"],
            registry=self.registry,
        )
        self.upstream_errors = {
            (system, reason): errors.labels(migration, system, reason)
            for system in SYSTEMS
            for reason in ERROR_REASONS
        }

    def record_verdict(self, verdict: Verdict) -> None:
        """Count one compared pair."""
        self.compared.inc()
        self.compared_count += 1
        if verdict.kind is not None:
            self.divergences[verdict.kind].inc()
            self.score.inc(verdict.score)
            self.score_sum += verdict.score

    def parity(self) -> float | None:
        """Parity since start, or None before the first comparison."""
        if not self.compared_count:
            return None
        return 1.0 - self.score_sum / self.compared_count

    def _parity(self) -> float:
        parity = self.parity()
        return math.nan if parity is None else parity
