"""The operator's ``/metrics``: the per-migration gauges of ``metrics`` and the operator's own
counters, in one prometheus-client registry served by ``hal9-migration run --metrics ADDR``.

The handlers call ``observe`` after each pass and ``forget`` when a migration is gone, so a deleted
migration's series disappear instead of freezing at their last value.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import metrics
from .models import Hal9MigrationSpec, Hal9MigrationStatus

REGISTRY = CollectorRegistry()
LABELS = ("namespace", "migration")

HELP = {
    "hal9_migration_phase": "Phase the route object holds: 0 not started, 1 Shadow, 2 Canary, "
    "3 StateMigration, 4 RampUp, 5 Full.",
    "hal9_migration_step": "Step inside the phase (1-based; 0 before Shadow).",
    "hal9_migration_progress_percent": "Share of the declared path walked (positions, start to target).",
    "hal9_migration_traffic_percent": "Share of the weighted traffic each system gets.",
    "hal9_migration_mirror_percent": "Share of requests mirrored (or copied by the shadow proxy).",
    "hal9_migration_health_status": "The health score (0..1) of the last analysis run.",
    "hal9_migration_neurons_total": "Neuron states the state migration moves.",
    "hal9_migration_neurons_migrated": "Neuron states migrated so far.",
    "hal9_migration_condition": "1 while the condition (Ready, Reconciling, Stalled, ...) is True.",
    "hal9_migration_halted": "1 while stopped until a person acts, by why: Aborted, RolledBack, "
    "StateMigrationFailed, ProgressDeadlineExceeded.",
    "hal9_migration_analysis_verdict": "1 for the last analysis run's verdict (Pass, Fail, Inconclusive).",
    "hal9_migration_rehearsal": "1 while the migration is a rehearsal (it writes no route object).",
    "hal9_feature_flag_enabled": "1 while the flag applies: hierarchical traffic, or a targeting rule.",
    "hal9_feature_flag_percentage": "Share of the requests the flag applies to.",
}

EVENTS = Counter(
    "hal9_migration_events",
    "Events posted about a migration, by reason.",
    [*LABELS, "reason"],
    registry=REGISTRY,
)
ROLLBACKS = Counter(
    "hal9_migration_rollbacks",
    "Rollbacks: automatic ones by their triggers, aborts, failed state migrations.",
    [*LABELS, "reason"],
    registry=REGISTRY,
)
RECONCILES = Counter(
    "hal9_operator_reconciles",
    "Passes over a migration, by result (ok, conflict, error).",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "hal9_operator_reconcile_duration_seconds",
    "How long one pass took, reads and writes included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)


class Migrations(Collector):
    """The gauges of every migration the operator drives, as of its last pass over each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_migration: dict[tuple[str, str], list[metrics.Sample]] = {}

    def set(self, namespace: str, name: str, found: list[metrics.Sample]) -> None:
        with self._lock:
            self._by_migration[(namespace, name)] = found

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._by_migration.pop((namespace, name), None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            snapshot = dict(self._by_migration)
        families: dict[str, GaugeMetricFamily] = {}
        for (namespace, name), found in sorted(snapshot.items()):
            for sample in found:
                extra = sorted(sample.labels)
                family = families.get(sample.name)
                if family is None:
                    family = GaugeMetricFamily(sample.name, HELP[sample.name], labels=[*LABELS, *extra])
                    families[sample.name] = family
                family.add_metric([namespace, name, *(sample.labels[k] for k in extra)], sample.value)
        yield from families.values()


MIGRATIONS = Migrations()
REGISTRY.register(MIGRATIONS)


def observe(
    namespace: str,
    name: str,
    spec: Hal9MigrationSpec | str,
    status: Hal9MigrationStatus,
    event_reasons: Iterable[str],
) -> None:
    """After a pass: the migration's gauges as its new status says, its Events and rollbacks counted."""
    MIGRATIONS.set(namespace, name, metrics.samples(spec, status))
    reasons = list(event_reasons)
    for reason in reasons:
        EVENTS.labels(namespace, name, reason).inc()
    for why in metrics.rollbacks(reasons, status):
        ROLLBACKS.labels(namespace, name, why).inc()


def forget(namespace: str, name: str) -> None:
    MIGRATIONS.forget(namespace, name)


def serve(address: str) -> None:
    """``HOST:PORT`` (``:PORT`` for every interface): ``/metrics`` from a thread of its own."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=REGISTRY)  # noqa: S104 (a pod's port)
