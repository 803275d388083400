"""A rehearsal (``spec.rehearsal: true``): the whole plan walked against the live cluster, writing
nothing (pure).

A team can then run the migration in staging or production and see every gate decided on real
metrics at each would-be step without moving a request. So a rehearsal's pass is the real pass
(``passes.Pass``), given a world in which the rehearsed position already holds, and its decision
stripped of everything that would act on the cluster:

- Where it stands: its own record in ``status.position`` (marked ``rehearsal``), else where the
  migration really stands, so a rehearsal of a live migration starts from there
  (``decision.standing``).
- The route object must still exist and be readable, but the pass sees it holding the rehearsed
  position, with no record and no owner: nothing is "restored", nothing is recovered from it, and
  a route object another migration drives can be rehearsed against, since nothing is written.
- The decision carries no route write, no state-migration Job action and no shadow proxy action
  (not even removing a proxy left from before: the real migration may still route through it).

Outside a rehearsal, a rehearsed ``status.position`` is never believed: the route object's record
(or nothing: the start) is where the migration stands, history says the rehearsal ended, and what the
rehearsal measured and made (analysis, health, gate, and the snapshots and rollback record it took,
marked ``rehearsal``) is dropped. A real rollback's record stays: rehearsing a held-off failed spec
does not change its hash (``rollback.spec_hash``), so it stays held off.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import phases, shadowproxy
from .decision import Decision, RouteView, standing
from .models import Hal9MigrationSpec, Hal9MigrationStatus
from .report import REHEARSAL, Journal, dump_status
from .traffic.base import ObservedRouting


def starting_point(
    spec: Hal9MigrationSpec, current: Hal9MigrationStatus, route: RouteView, journal: Journal
) -> tuple[Hal9MigrationStatus, RouteView]:
    """The status and route view a pass starts from (the ones read, unless a rehearsal is involved)."""
    position = standing(current, route.memory, spec.rehearsal)
    if not spec.rehearsal:
        rehearsed = current.position
        if rehearsed is None or not rehearsed.rehearsal:
            return current, route
        journal.record(
            "RehearsalEnded",
            f"The rehearsal ended at {phases.at(rehearsed).label()}; the migration goes on from "
            f"{phases.at(position).label()}, where the route object stands",
        )
        # What the rehearsal measured and decided describes positions the route object never held:
        # its analysis, health and gate go, and so do the snapshots and the rollback it made (a real
        # automatic rollback's record stays, so its failed spec is still held off).
        real_snapshots = [s for s in current.snapshots if not s.rehearsal]
        real_rollback = current.rollback if current.rollback and not current.rollback.rehearsal else None
        update = {
            "position": position,
            "snapshots": real_snapshots,
            "rollback": real_rollback,
            "analysis": None,
            "health": None,
            "gate": None,
        }
        return current.model_copy(update=update), route
    here = phases.at(position)
    holding = ObservedRouting(here.weight, shadowproxy.route_mirror(spec, here), route.observed.targeting)
    return current.model_copy(update={"position": position}), RouteView(
        holding, unsupported=route.unsupported
    )


def settled(spec: Hal9MigrationSpec, decision: Decision, stored: Hal9MigrationStatus) -> Decision:
    """The decision as the edge acts on it: whether the status changed is judged against the status
    as stored (the pass may have started from an amended copy), and a rehearsal acts on nothing but
    its own status, where the snapshots and the rollback it made are marked as rehearsed."""
    if not spec.rehearsal:
        return dataclasses.replace(decision, changed=decision.status != dump_status(stored))
    status = _mark_rehearsed(decision.status, dump_status(stored))
    return dataclasses.replace(
        decision,
        status=status,
        changed=status != dump_status(stored),
        route=None,
        state=None,
        proxy=None,
        summary=REHEARSAL + decision.summary,
    )


def _mark_rehearsed(status: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``status`` with the snapshots and the rollback record this rehearsal pass made marked
    ``rehearsal``, so ending the rehearsal drops them and nothing else."""
    out = dict(status)
    before = stored.get("snapshots") or []
    if "snapshots" in status:
        out["snapshots"] = [s if s in before else {**s, "rehearsal": True} for s in status["snapshots"]]
    rollback = status.get("rollback")
    if rollback is not None and rollback != stored.get("rollback"):
        out["rollback"] = {**rollback, "rehearsal": True}
    return out
