"""The walk of one pass over a valid spec and a usable route object (pure): where the route stands,
the controls, at most one move forward or back, and the status that says so. ``plan.decide`` runs it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import (
    analysis,
    autorollback,
    conditions,
    controlsteps,
    gates,
    phases,
    rollback,
    shadowproxy,
    statesteps,
)
from .clock import later, parse_time, timestamp_ms
from .controls import Control
from .decision import Decision, RouteView, RouteWrite, StateAction, decision_of, standing
from .flags import targeting_at
from .halts import ABORTED, AUTO_ROLLED_BACK, DEADLINE_EXCEEDED, STATE_FAILED
from .models import (
    ControlsStatus,
    GateStatus,
    Hal9MigrationSpec,
    Hal9MigrationStatus,
    Halt,
    Phase,
    PositionRecord,
    Snapshot,
    parse_duration,
)
from .phases import START, Position
from .report import (
    Journal,
    Outcome,
    degraded_condition,
    finish,
    outcome_conditions,
    paused_condition,
)
from .staterun import StateObservation
from .traffic.base import Routing

SNAPSHOT_LIMIT = 20
SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 (a reason, not a password)
JOB_REJECTED = "StateMigrationJobRejected"


class Pass:
    """The steps of one pass over a valid spec and a usable route object."""

    def __init__(
        self,
        spec: Hal9MigrationSpec,
        generation: int,
        current: Hal9MigrationStatus,
        route: RouteView,
        present: list[Control],
        name: str,
        now: datetime,
        journal: Journal,
        state: StateObservation | None,
        run: analysis.Run | None,
        proxy: shadowproxy.ProxyView | None = None,
    ) -> None:
        self.spec, self.generation, self.current, self.route = spec, generation, current, route
        self.present, self.name, self.now, self.journal = present, name, now, journal
        self.controls = (current.controls or ControlsStatus()).model_copy(deep=True)
        self.halt = current.halt
        self.gate = current.gate
        self.consume: list[Control] = []
        self.promote: Control | None = None
        self.aborted_by = "operator"
        self.frozen = False  # assessing the position a move just reached: no second move, no notes
        self.snapshots = list(current.snapshots)
        self.state_seen = state  # None: not observed in this pass (or observed for an older attempt)
        self.state_status = current.state_migration
        self.run_made = run
        self.analysis = current.analysis
        self.health = current.health
        self.rollback = current.rollback
        self.spec_hash = rollback.spec_hash(spec)
        self.proxy_seen = proxy
        # Flat's share goes through a ready shadow proxy now (Shadow's gate in Proxy mode wants it).
        self.shadow_routed = route.observed.detour is not None and proxy is not None and proxy.ready
        self.proxy_plan = shadowproxy.ProxyPlan(None, None, None)

    # --- the pass --------------------------------------------------------------------------------

    def run(self) -> Decision:
        record = self._where_the_route_stands()
        autorollback.end_stale_halt(self)
        controlsteps.apply_controls(self)
        autorollback.hold_failed_spec(self)
        autorollback.analyse(self, record)
        here = phases.at(record)
        path = phases.path(self.spec)
        target = path[-1]
        new_record, outcome = self._step(record, here, path, target)
        if outcome is None:  # it moved: say where that leaves it, as the next pass would see it
            self.frozen = True
            _, outcome = self._step(new_record, phases.at(new_record), path, target)
            outcome = outcome or Outcome(
                "moving",
                "Progressing",
                f"At {phases.at(new_record).label()}: the next step is due now",
                self.now,
            )
        state_action = statesteps.state_job(self, new_record, target)
        statesteps.add_late_error(self)
        self.proxy_plan = shadowproxy.plan(
            self.spec, self.name, new_record, self.halt, self.proxy_seen, self.route.observed.detour, self.now
        )
        write = None
        if new_record is not None:
            held = tuple(new_record.held) if new_record.generation == self.generation else ()
            there = phases.at(new_record)
            routing = Routing(
                there.weight,
                shadowproxy.route_mirror(self.spec, there),
                targeting_at(self.spec, there, held),
                self.proxy_plan.detour,
            )
            self._note_detour(there, routing.detour)
            write = RouteWrite(routing, new_record)
        return self._decision(new_record, outcome, write, state_action)

    def _note_detour(self, there: Position, detour: str | None) -> None:
        """History says when flat's traffic starts or stops going through the shadow proxy in Shadow
        (leaving Shadow says so itself)."""
        before = self.route.observed.detour
        if there.phase is not Phase.SHADOW or detour == before:
            return
        if detour is not None:
            self.journal.record(
                "ShadowProxyRouted",
                f"Flat's traffic goes through the shadow proxy {detour}, which compares the answers",
            )
        else:
            self.journal.record(
                "ShadowProxyBypassed",
                f"The shadow proxy {before} is not ready: traffic goes straight to flat, nothing is compared",
                warning=True,
            )

    def _where_the_route_stands(self) -> PositionRecord | None:
        """The route's own record when it is newer than status (a status write was lost), else status's."""
        memory, known = self.route.memory, self.current.position
        if memory is not None and standing(self.current, memory, self.spec.rehearsal) is memory:
            if known is None or (memory.phase, memory.step, memory.weight) != (
                known.phase,
                known.step,
                known.weight,
            ):
                # The pass that moved the route died before its status write: record its move now.
                self.journal.record(
                    memory.reason or "Advanced",
                    f"{phases.at(memory).label()} (recorded from the route object: the status write "
                    "after this move did not land)",
                    before=phases.at(known) if known else START,
                    after=phases.at(memory),
                    actor=memory.actor,
                    time=conditions.timestamp(phases.taken_at(memory)),
                )
            if memory.control:
                verb, _, value = memory.control.partition("=")
                self.controls.consumed[verb] = value
            return memory
        return known

    # --- choosing the step -------------------------------------------------------------------------

    def _step(
        self, record: PositionRecord | None, here: Position, path: list[Position], target: Position
    ) -> tuple[PositionRecord | None, Outcome | None]:
        """At most one move (then the outcome is None), or why not."""
        if self.halt is not None and self.halt.reason == ABORTED:
            self._ignore_promote("the migration is aborted; retry first")
            if record is not None and here != START:
                return self._move(record, START, ABORTED, actor=self.aborted_by), None
            return record, Outcome("halted", ABORTED, self.halt.message)
        if self.halt is not None and self.halt.reason == STATE_FAILED:
            self._ignore_promote("the state migration failed; retry first")
            return self._after_state_failure(record, here)
        if self.halt is not None and self.halt.reason == AUTO_ROLLED_BACK and self.rollback is not None:
            self._ignore_promote("the migration was rolled back; retry or change the spec first")
            return self._back_to_safety(record, here, autorollback.safe(self.rollback), AUTO_ROLLED_BACK)
        if here.rank > target.rank:
            self._ignore_promote("the migration is walking back")
            return self._back(record, here, target)
        index = phases.locate(path, here.rank)
        if path[index].rank == here.rank and index == len(path) - 1:
            self._ignore_promote("the declared target is reached")
            held = tuple(record.held) if record and record.generation == self.generation else ()
            if held:
                return record, Outcome(
                    "target", rollback.PARTIALLY_ROLLED_BACK, self._held_message(here, held)
                )
            if record is not None and record.reason == rollback.ROLLED_BACK:
                reached = Outcome(
                    "target", rollback.ROLLED_BACK, f"Walked back to {target.label()} as declared"
                )
            else:
                reached = Outcome("target", "TargetReached", f"Holding at {target.label()} as declared")
            return self._resync(record, target), reached
        upcoming = path[index + 1]
        return self._forward(record, here, upcoming, target)

    def _forward(
        self, record: PositionRecord | None, here: Position, upcoming: Position, target: Position
    ) -> tuple[PositionRecord | None, Outcome | None]:
        promote = self.promote
        if promote is None:
            if self.halt is not None:
                return self._resync(record, here), Outcome("halted", self.halt.reason, self.halt.message)
            if self.spec.paused or self.controls.paused_by:
                who = (
                    "spec.paused" if self.spec.paused else f"the pause annotation ({self.controls.paused_by})"
                )
                return self._resync(record, here), Outcome(
                    "paused", "Paused", f"Paused by {who} at {here.label()}; target {target.label()}"
                )
        if record is None or here == START:
            moved = self._move(
                record,
                upcoming,
                "Started",
                snapshot_of=here,
                actor=promote.actor if promote else "operator",
                control=promote,
            )
            return moved, None
        since = phases.taken_at(record)
        due = later(since, phases.hold_time(self.spec, here.phase))
        if promote is not None:
            self.halt = None
            return self._move(
                record, upcoming, "Promoted", snapshot_of=here, actor=promote.actor, control=promote
            ), None
        if self.now < due:
            return self._resync(record, here), Outcome(
                "waiting",
                "WaitingForStep",
                f"At {here.label()} until {conditions.timestamp(due)}; next {upcoming.label()}",
                due,
            )
        if here.phase is Phase.STATE_MIGRATION:
            statesteps.new_attempt_after_failure(self)
            seen = self.state_seen
            if seen is not None and seen.secret_problems and seen.job is None:
                message = (
                    f"{'; '.join(seen.secret_problems)}: no state-migration Job is created until it exists"
                )
                return self._resync(record, here), Outcome("halted", SECRET_NOT_FOUND, message)
            if seen is not None and seen.job_problem:
                return self._resync(record, here), Outcome("halted", JOB_REJECTED, seen.job_problem)
        evidence = gates.Evidence(
            state=self.state_seen,
            analysis=self.analysis,
            step_since=record.since,
            now=self.now,
            shadow_routed=self.shadow_routed,
        )
        result = gates.gate_for(self.spec, here).check(self.spec, here, evidence)
        if result.gate == gates.StateMigrated.name and result.verdict is gates.Verdict.FAIL:
            return self._state_failed(record, here, result.reason)
        if result.passed:
            moved = self._move(
                record,
                upcoming,
                "Advanced",
                snapshot_of=here,
                message=f"{upcoming.label()}: gate {result.gate} passed: {result.reason}",
            )
            return moved, None
        return self._resync(record, here), self._wait_for_gate(here, upcoming, result)

    def _wait_for_gate(self, here: Position, upcoming: Position, result: gates.GateResult) -> Outcome:
        started = parse_time(self.gate.since) if self.gate and self.gate.name == result.gate else None
        if result.gate == gates.StateMigrated.name and statesteps.state_progressed(self):
            started = None  # the deadline is for a run that stopped moving, not for a long one
        since = started or self.now
        self.gate = GateStatus(
            name=result.gate, verdict=result.verdict.value, reason=result.reason, since=timestamp_ms(since)
        )
        deadline = later(since, parse_duration(self.spec.progress_deadline))
        if self.now >= deadline:
            message = (
                f"{here.label()}: gate {result.gate} has not passed within progressDeadline "
                f"{self.spec.progress_deadline}: {result.reason}"
            )
            self.halt = self._halt(DEADLINE_EXCEEDED, message)
            self.journal.record(DEADLINE_EXCEEDED, message, warning=True)
            return Outcome("halted", DEADLINE_EXCEEDED, message)
        message = (
            f"At {here.label()}: waiting for gate {result.gate} ({result.verdict.value}: {result.reason}) "
            f"before {upcoming.label()}; stalls at {conditions.timestamp(deadline)}"
        )
        return Outcome("waiting", "WaitingForGate", message, deadline)

    def _back(
        self, record: PositionRecord | None, here: Position, target: Position
    ) -> tuple[PositionRecord | None, Outcome | None]:
        assert record is not None  # a position above START was recorded
        step = rollback.step_back(
            self.spec,
            here,
            phases.taken_at(record),
            record.reason,
            target,
            self.now,
            autorollback.health_falling(self, record),
        )
        if step.waiting:
            return self._resync(record, here), Outcome(
                "moving",
                rollback.ROLLING_BACK,
                f"Walking back to {target.label()}: at {here.weight}%, next step at "
                f"{conditions.timestamp(step.wait_until or self.now)}",
                step.wait_until,
            )
        if step.held:
            held = tuple(step.held)
            if step.position != here or tuple(record.held) != held or record.generation != self.generation:
                return self._move(record, step.position, step.reason, held=held), None
            return record, Outcome(
                "target", rollback.PARTIALLY_ROLLED_BACK, self._held_message(step.position, held)
            )
        return self._move(
            record,
            step.position,
            step.reason,
            message=f"Walking back to {target.label()}: {step.position.label()}",
        ), None

    def _state_failed(
        self, record: PositionRecord | None, here: Position, reason: str
    ) -> tuple[PositionRecord | None, Outcome | None]:
        """Stop: a person must look (the data is safe); walk back with the rollback strategy."""
        message = f"{here.label()}: {reason}"
        self.halt = self._halt(STATE_FAILED, message)
        self.journal.record(STATE_FAILED, message, warning=True)
        return self._after_state_failure(record, here)

    def _after_state_failure(
        self, record: PositionRecord | None, here: Position
    ) -> tuple[PositionRecord | None, Outcome | None]:
        """Traffic goes back to flat as ``spec.rollback`` says; the stop holds until retry or a new spec."""
        return self._back_to_safety(
            record, here, START, STATE_FAILED, "; retry (or change the spec) to go on"
        )

    def _back_to_safety(
        self, record: PositionRecord | None, here: Position, safe: Position, reason: str, hint: str = ""
    ) -> tuple[PositionRecord | None, Outcome | None]:
        """Walk back to ``safe`` with the rollback strategy, then hold there while the stop lasts."""
        assert self.halt is not None
        halted = Outcome("halted", reason, self.halt.message + hint)
        if record is None or here == START or here.rank <= safe.rank:
            return record, halted
        moved, outcome = self._back(record, here, safe)
        if outcome is None:
            return moved, None
        if outcome.state == "moving":  # a Gradual walk waiting for its next step
            halted.due = outcome.due
        return moved, halted

    # --- bookkeeping -------------------------------------------------------------------------------

    def _move(
        self,
        record: PositionRecord | None,
        to: Position,
        reason: str,
        *,
        actor: str = "operator",
        control: Control | None = None,
        snapshot_of: Position | None = None,
        held: tuple[str, ...] = (),
        message: str | None = None,
    ) -> PositionRecord | None:
        if self.frozen:
            return record
        self.promote = None
        before = phases.at(record)
        if snapshot_of is not None and to.phase != before.phase:
            self.snapshots = [*self.snapshots, self._snapshot(before)][-SNAPSHOT_LIMIT:]
        self.gate = None
        self.journal.record(
            reason, message or to.label(), before=before, after=to, actor=actor, warning=reason == ABORTED
        )
        return PositionRecord(
            phase=to.phase,
            step=to.step,
            weight=to.weight,
            mirror=to.mirror,
            since=timestamp_ms(self.now),
            reason=reason,
            actor=actor,
            control=control.token if control else None,
            held=list(held),
            generation=self.generation,
            rehearsal=self.spec.rehearsal,
        )

    def _resync(self, record: PositionRecord | None, here: Position) -> PositionRecord | None:
        """The same position; note it when the route object was changed behind the operator's back."""
        if record is None or self.frozen:
            return record
        seen = self.route.observed
        if (seen.weight, seen.mirror) != (record.weight, shadowproxy.route_mirror(self.spec, here)):
            self.journal.record(
                "RouteRestored",
                f"The route object held weight {seen.weight}%, mirror {seen.mirror}%; "
                f"restored {here.label()}",
                before=here,
                after=here,
                warning=True,
            )
        return record

    def _halt(self, reason: str, message: str) -> Halt:
        return controlsteps.halt_now(self, reason, message)

    def _ignore_promote(self, why: str) -> None:
        if self.promote is not None:
            self.journal.record(
                "PromoteIgnored", f"Nothing to promote: {why}", actor=self.promote.actor, warning=True
            )
            self.promote = None

    def _held_message(self, here: Position, held: tuple[str, ...]) -> str:
        return (
            f"Partial rollback: {', '.join(held)} left as it was (not in rollback.partial.components); "
            f"the route object holds {here.label()}"
        )

    def _snapshot(self, before: Position) -> Snapshot:
        return Snapshot(
            time=conditions.timestamp(self.now),
            phase=before.phase,
            weight=before.weight,
            spec=self.spec.model_dump(by_alias=True, mode="json"),
            targeting=[
                rule.model_dump(by_alias=True, mode="json", exclude_none=True) for rule in self.spec.targeting
            ],
        )

    # --- the status ------------------------------------------------------------------------------

    def _decision(
        self,
        record: PositionRecord | None,
        outcome: Outcome,
        write: RouteWrite | None,
        state: StateAction | None,
    ) -> Decision:
        here = phases.at(record) if record else None
        update: dict[str, Any] = {
            "position": record,
            "phase": here.phase if here else None,
            "step": here.step if here else None,
            "weight": here.weight if here else None,
            "mirror_percent": here.mirror if here else None,
            "gate": self.gate if outcome.reason == "WaitingForGate" else None,
            "halt": self.halt,
            "controls": self.controls if (self.controls.paused_by or self.controls.consumed) else None,
            "snapshots": self.snapshots,
            "state_migration": self.state_status,
            "analysis": self.analysis,
            "health": autorollback.health_now(self, record),
            "rollback": self.rollback,
            "shadow": self.proxy_plan.status,
        }
        current = self.current.model_copy(update=update)
        degraded = degraded_condition(self.analysis, self.halt, self.spec.analysis.failure_limit)
        wanted = outcome_conditions(outcome, degraded, rehearsal=self.spec.rehearsal)
        paused = paused_condition(self.spec, self.controls)
        report = finish(current, self.generation, self.now, self.journal, wanted, paused, self.current)
        requeue = None
        if outcome.due is not None:
            requeue = max(0.0, (outcome.due - self.now).total_seconds())
        elif outcome.state == "moving":
            requeue = 0.0
        polls = (
            statesteps.state_poll(self, record),
            autorollback.analysis_poll(self, record),
            shadowproxy.poll_seconds(self.proxy_plan),
        )
        for poll in polls:
            if poll is not None:
                requeue = poll if requeue is None else min(requeue, poll)
        return decision_of(
            report,
            f"{outcome.reason}: {outcome.message}",
            write,
            self.consume,
            requeue,
            state,
            self.proxy_plan.action,
        )
