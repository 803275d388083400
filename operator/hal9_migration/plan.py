"""One pass of the migration: spec + status + what the cluster holds -> the next status and at most
one route write (pure).

The pass is level-based. It reads where the route object stands (the operator's position record on
it, written in the same request as the weights, or failing that ``status.position``), compares it
with the declared target, and takes at most one step: forward when the step's hold time is over and
its gate passes, backward when the spec was reverted to an earlier target, or a rewrite of the same
position when someone changed the weights by hand. Repeating a pass on the same input changes
nothing, so a restarted operator, a lost watch or a replayed event never skips or repeats a step.

The edge (``handlers.py``) gathers the inputs, renders the returned ``RouteWrite`` with the router,
writes it, then writes the status, posts the Events and removes the consumed control annotations.

A rehearsal (``spec.rehearsal``) runs the same pass from the position it has rehearsed to, and its
decision writes nothing but the status (``rehearsal``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from . import analysis, rehearsal
from .conditions import Desired
from .controls import Control
from .decision import Decision, Observed, RouteView, RouteWrite, StateAction, decision_of, standing
from .inputs import load_record, load_status, parse_spec, references
from .models import Hal9MigrationSpec, Hal9MigrationStatus, PositionRecord
from .passes import Pass
from .report import Event, Journal, finish, paused_condition, stalled
from .shadowproxy import ProxyView
from .staterun import StateObservation
from .statesteps import observes_state
from .traffic.base import RouteProblem


def decide(
    spec: Hal9MigrationSpec | str,
    generation: int,
    current: Hal9MigrationStatus,
    observed: Observed,
    now: datetime,
    *,
    name: str = "",
    route: RouteView | RouteProblem | None = None,
    controls: Sequence[Control] = (),
    state: StateObservation | None = None,
    run: analysis.Run | None = None,
    proxy: ProxyView | None = None,
) -> Decision:
    """One pass: what the status should say now, and what the route object should hold.

    ``run`` is the analysis run the edge made because ``analysis_due`` asked for it (None: none);
    ``proxy`` the shadow proxy as found (None: not looked at, as when it is not in use)."""
    if isinstance(spec, str):
        paused = Desired("Paused", "Unknown", "InvalidSpec", "The spec cannot be read")
        wanted = stalled("InvalidSpec", f"The spec is invalid: {spec}")
        return decision_of(finish(current, generation, now, Journal(now), wanted, paused), "invalid spec")
    journal = Journal(now, rehearsal=spec.rehearsal)
    paused_now = paused_condition(spec, current.controls)
    problem = _problem(observed, route, spec)
    if problem is not None:
        reason, message = problem
        report = finish(current, generation, now, journal, stalled(reason, message), paused_now)
        return decision_of(report, reason)
    assert isinstance(route, RouteView)  # _problem() reports anything else
    start, view = rehearsal.starting_point(spec, current, route, journal)
    decided = Pass(spec, generation, start, view, list(controls), name, now, journal, state, run, proxy).run()
    return rehearsal.settled(spec, decided, current)


# The Stalled reasons of a pass that stops before the walk (``_problem``, or an invalid spec): it acts
# on no control annotation until the cause is fixed, so the kubectl plugin says so instead of waiting.
CONTROLS_WAIT_FOR = frozenset(
    {
        "InvalidSpec",
        "ReferenceForbidden",
        "ReferenceNotFound",
        "RouteNotFound",
        "RouteMisconfigured",
        "RouteInUse",
        "UnsupportedByRouter",
    }
)


def _problem(
    observed: Observed, route: RouteView | RouteProblem | None, spec: Hal9MigrationSpec
) -> tuple[str, str] | None:
    """Why nothing can move without a change to the cluster or spec, or None."""
    if observed.forbidden:
        return "ReferenceForbidden", "The operator may not read: " + ", ".join(
            observed.forbidden
        ) + "; check its RBAC"
    if observed.missing:
        return "ReferenceNotFound", "Not found: " + ", ".join(observed.missing)
    if route is None:
        return "RouteNotFound", "The route object has not been read"
    if isinstance(route, RouteProblem):
        return route.reason, route.message
    if route.owner is not None and not spec.rehearsal:  # a rehearsal writes nothing to it
        return (
            "RouteInUse",
            f"The route object is driven by Hal9Migration {route.owner}; one migration per route object",
        )
    if route.unsupported is not None:
        return "UnsupportedByRouter", route.unsupported
    return None


def analysis_due(
    spec: Hal9MigrationSpec | str,
    status: Hal9MigrationStatus,
    memory: PositionRecord | None,
    now: datetime,
    namespace: str,
    name: str,
) -> analysis.Request | None:
    """The analysis run the edge must make before this pass, or None."""
    if isinstance(spec, str):
        return None
    return analysis.due(spec, status.analysis, standing(status, memory, spec.rehearsal), now, namespace, name)


# The edge reads its inputs through the plan, the one entry point of the decision core.
__all__ = [
    "Decision",
    "Event",
    "Observed",
    "ProxyView",
    "RouteView",
    "RouteWrite",
    "StateAction",
    "StateObservation",
    "analysis_due",
    "decide",
    "load_record",
    "load_status",
    "observes_state",
    "parse_spec",
    "references",
    "standing",
]
