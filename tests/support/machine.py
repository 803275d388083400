"""A pure stand-in for the cluster around ``plan.decide``: one route object in memory and a clock.

It does what the edge does (apply the route write, keep the status, remove consumed annotations,
make the analysis run that is due) without any I/O, so the phase machine can be driven through whole
migrations in unit tests. The route object is the NoopRouter's, so the same render path as production
is used; the metrics come from the NoopProvider, the analysis package's test double.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hal9_migration import analysis, controls, plan, shadowproxy
from hal9_migration.statemigration.stores.base import RunReport
from hal9_migration.staterun import JobView, StateObservation
from hal9_migration.traffic.base import ObservedRouting


@dataclass
class Route:
    weight: int = 0
    mirror: int = 0
    targeting: tuple[str, ...] = ()
    record: dict[str, Any] | None = None  # the operator's position record, as on the annotation
    detour: str | None = None  # the shadow proxy Service in flat's place
    owner: str | None = None  # another existing migration that drives this route object


@dataclass
class ProxyWorld:
    """The shadow proxy's edge in memory: made on the first apply, ready on the next (when it starts)."""

    exists: bool = False
    ready: bool = False
    starts: bool = True  # False: a proxy that never gets a ready endpoint
    actions: list[str] = field(default_factory=list)
    observed: int = 0

    def observe(self) -> plan.ProxyView:
        self.observed += 1
        return plan.ProxyView(exists=self.exists, ready=self.ready)

    def apply(self, action: str) -> None:
        self.actions.append(action)
        if action == "delete":
            self.exists = self.ready = False
        elif self.exists:
            self.ready = self.starts
        else:
            self.exists = True


@dataclass
class StateWorld:
    """The state migration's edge in memory: Jobs by attempt, Secrets, and the target's report."""

    jobs: dict[int, JobView] = field(default_factory=dict)
    actions: list[plan.StateAction] = field(default_factory=list)
    secret_problems: list[str] = field(default_factory=list)
    report: RunReport | None = None
    observed: int = 0  # passes that observed the state migration

    def observe(self, attempt: int) -> StateObservation:
        self.observed += 1
        return StateObservation(
            job=self.jobs.get(attempt), secret_problems=list(self.secret_problems), report=self.report
        )

    def apply(self, action: plan.StateAction) -> None:
        self.actions.append(action)
        if action.verb == "create":
            assert action.attempt not in self.jobs, "a second Job for one attempt"
            self.jobs[action.attempt] = JobView(name=f"job-{action.attempt}", active=action.shards)
        else:
            job = self.jobs[action.attempt]
            self.jobs[action.attempt] = replace(job, suspended=action.verb == "suspend")

    def finish(self, attempt: int, **changes: Any) -> None:
        """The Job of ``attempt`` changes as Kubernetes would report it (complete, failed ...)."""
        self.jobs[attempt] = replace(self.jobs[attempt], active=0, **changes)


@dataclass
class World:
    spec: dict[str, Any]
    now: datetime
    name: str = "m"
    generation: int = 1
    status: dict[str, Any] = field(default_factory=dict)
    route: Route = field(default_factory=Route)
    annotations: dict[str, str] = field(default_factory=dict)
    writes: list[tuple[int, int]] = field(default_factory=list)  # (weight, mirror) after each route change
    decisions: list[plan.Decision] = field(default_factory=list)
    state: StateWorld = field(default_factory=StateWorld)
    metrics: analysis.NoopProvider = field(default_factory=analysis.NoopProvider)
    runs: list[analysis.Run] = field(default_factory=list)
    proxy: ProxyWorld = field(default_factory=ProxyWorld)

    def edit(self, **changes: Any) -> None:
        """A spec change (kubectl apply / git revert): a new generation."""
        self.spec = {**copy.deepcopy(self.spec), **changes}
        self.generation += 1

    def step(self, seconds: float = 0) -> plan.Decision:
        self.now += timedelta(seconds=seconds)
        record = plan.load_record(self.route.record) if self.route.record else None
        observed = ObservedRouting(
            self.route.weight, self.route.mirror, self.route.targeting, detour=self.route.detour
        )
        view = plan.RouteView(observed, memory=record, owner=self.route.owner)
        spec, status = plan.parse_spec(self.spec), plan.load_status(self.status)
        seen = None
        if plan.observes_state(spec, status, record):
            attempt = status.state_migration.attempt if status.state_migration else 1
            seen = self.state.observe(attempt)
        proxy = None
        if not isinstance(spec, str) and shadowproxy.observes(spec, status, self.route.detour):
            proxy = self.proxy.observe()
        run = None
        request = plan.analysis_due(spec, status, record, self.now, "hal9", self.name)
        if request is not None:
            run = analysis.measure(self.metrics, request, self.now)
            self.runs.append(run)
        decision = plan.decide(
            spec,
            self.generation,
            status,
            plan.Observed(),
            self.now,
            name=self.name,
            route=view,
            controls=controls.read(self.annotations),
            state=seen,
            run=run,
            proxy=proxy,
        )
        if decision.state is not None:
            self.state.apply(decision.state)
        if decision.route is not None:
            routing = decision.route.routing
            targeting = (
                self.route.targeting
                if routing.targeting is None
                else tuple(r.name for r in routing.targeting)
            )
            before = (self.route.weight, self.route.mirror) if self.route.record else None
            self.route = Route(
                routing.weight,
                routing.mirror,
                targeting,
                decision.route.record.model_dump(by_alias=True, exclude_none=True, mode="json"),
                routing.detour,
            )
            if (routing.weight, routing.mirror) != before:
                self.writes.append((routing.weight, routing.mirror))
        if decision.proxy is not None:  # after the route write, as the edge does
            self.proxy.apply(decision.proxy)
        self.status = decision.status
        for control in decision.consume:
            key = controls.annotation(control.verb)
            if self.annotations.get(key) == control.value:
                del self.annotations[key]
        self.decisions.append(decision)
        return decision

    def run(self, seconds: float, tick: float = 1.0) -> None:
        """Passes every ``tick`` seconds for ``seconds``."""
        for _ in range(int(seconds / tick)):
            self.step(tick)

    def condition(self, type_: str) -> tuple[str, str]:
        found = [c for c in self.status.get("conditions", []) if c["type"] == type_]
        return (found[0]["status"], found[0]["reason"]) if found else ("", "")
