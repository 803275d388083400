"""The operator's own metrics about each migration, computed from its spec and status (pure).

HAL9's names where HAL9 has them (``hal9_migration_phase``, ``_progress_percent``,
``_neurons_migrated``, ``_neurons_total``, ``_traffic_percent{system}``, ``_health_status``,
``hal9_feature_flag_enabled`` / ``_percentage``), every series labelled by the migration's namespace
and name. ``exporter.py`` keeps them in a prometheus-client registry and serves them.

Feature flags: the hierarchical share is the flag ``hierarchical`` (enabled while any traffic goes
there, its percentage the weight); each targeting rule is a flag of its own name, enabled (100 %)
while the route object carries it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import phases
from .autorollback import AUTOMATIC_ROLLBACK
from .flags import targeting_at
from .halts import ABORTED, AUTO_ROLLED_BACK, DEADLINE_EXCEEDED, STATE_FAILED
from .models import Hal9MigrationSpec, Hal9MigrationStatus

CONDITIONS = ("Ready", "Reconciling", "Stalled", "Degraded", "Paused")
# Every stop only a person ends, each a series from the start, so an alert sees it go from 0 to 1.
HALTS = (ABORTED, AUTO_ROLLED_BACK, STATE_FAILED, DEADLINE_EXCEEDED)
VERDICTS = ("Pass", "Fail", "Inconclusive")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]  # beside namespace and migration
    value: float


def samples(spec: Hal9MigrationSpec | str, status: Hal9MigrationStatus) -> list[Sample]:
    """Every gauge of one migration now (an invalid spec: those status alone can tell)."""
    here = phases.at(status.position)
    out = [
        Sample("hal9_migration_phase", {}, float(phases.phase_number(here))),
        Sample("hal9_migration_step", {}, float(here.step)),
        Sample("hal9_migration_traffic_percent", {"system": "hierarchical"}, float(here.weight)),
        Sample("hal9_migration_traffic_percent", {"system": "flat"}, float(100 - here.weight)),
        Sample("hal9_migration_mirror_percent", {}, float(here.mirror)),
        Sample("hal9_feature_flag_enabled", {"flag": "hierarchical"}, float(here.weight > 0)),
        Sample("hal9_feature_flag_percentage", {"flag": "hierarchical"}, float(here.weight)),
    ]
    found = {c.type: c.status for c in status.conditions}
    out += [
        Sample("hal9_migration_condition", {"type": t}, float(found.get(t) == "True")) for t in CONDITIONS
    ]
    halt = status.halt.reason if status.halt is not None else None
    out += [Sample("hal9_migration_halted", {"reason": r}, float(halt == r)) for r in HALTS]
    verdict = status.analysis.verdict if status.analysis is not None else None
    out += [Sample("hal9_migration_analysis_verdict", {"verdict": v}, float(verdict == v)) for v in VERDICTS]
    if status.health is not None and status.health.score is not None:
        out.append(Sample("hal9_migration_health_status", {}, status.health.score))
    state = status.state_migration
    if state is not None and state.total is not None:
        out.append(Sample("hal9_migration_neurons_total", {}, float(state.total)))
        out.append(Sample("hal9_migration_neurons_migrated", {}, float(state.migrated or 0)))
    if isinstance(spec, str):
        return out
    path = phases.path(spec)
    index = phases.locate(path, here.rank)
    progress = 100.0 * index / (len(path) - 1) if here.rank <= path[-1].rank else 100.0
    out.append(Sample("hal9_migration_progress_percent", {}, round(progress, 1)))
    out.append(Sample("hal9_migration_rehearsal", {}, float(spec.rehearsal)))
    active = {rule.name for rule in targeting_at(spec, here) or ()}
    for rule in spec.targeting:
        on = rule.name in active
        out.append(Sample("hal9_feature_flag_enabled", {"flag": rule.name}, float(on)))
        out.append(Sample("hal9_feature_flag_percentage", {"flag": rule.name}, 100.0 * on))
    return out


def rollbacks(event_reasons: Iterable[str], status: Hal9MigrationStatus) -> set[str]:
    """The rollbacks one pass decided, by reason: an automatic one by its triggers
    (``error-rate,health-score``), an abort, a failed state migration (each once, though a pass may
    post two Events for it)."""
    out = set()
    for reason in event_reasons:
        if reason == AUTOMATIC_ROLLBACK:
            out.add(status.rollback.reason if status.rollback is not None else "automatic")
        elif reason == ABORTED:
            out.add("abort")
        elif reason == STATE_FAILED:
            out.add("state-migration-failed")
    return out
