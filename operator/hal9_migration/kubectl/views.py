"""What the plugin draws, as rich renderables built from an object as read (pure: no I/O, no clock).

rich (rather than hand-written escape codes) because it measures the terminal, redraws a live view
in place without flicker, and prints the very same renderables as plain text when the output is a
pipe or a file, so ``kubectl hal9 status m | grep`` and the live view never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .. import phases, shadowproxy, timeline, traffic
from ..clock import parse_time
from ..conditions import timestamp
from ..inputs import load_status, parse_spec
from ..models import Hal9MigrationSpec, Hal9MigrationStatus, HistoryEntry, Phase, parse_duration
from ..traffic.base import ObservedRouting
from .summary import Summary, headline, summarise

_STYLE = {
    "Stalled": "bold red",
    "Degraded": "red",
    "Paused": "yellow",
    "Reconciling": "cyan",
    "Ready": "green",
}
_VERDICT = {"Pass": "green", "Fail": "red", "Inconclusive": "yellow"}


@dataclass(frozen=True)
class RouteSeen:
    """The route object as the plugin read it: what it routes, or why that cannot be told."""

    kind: str
    name: str
    routing: ObservedRouting | None = None
    problem: str | None = None


def route_seen(
    spec: Hal9MigrationSpec, namespace: str, name: str, obj: Mapping[str, Any] | None
) -> RouteSeen:
    router = traffic.router_for(spec, namespace, shadowproxy.proxy_name(name))
    if obj is None:
        return RouteSeen(router.kind, router.name, problem="not found")
    try:
        return RouteSeen(router.kind, router.name, routing=router.read_routes(dict(obj)))
    except traffic.RouteProblem as problem:
        return RouteSeen(router.kind, router.name, problem=problem.message)


# --- small pieces ----------------------------------------------------------------------------------


def age(since: datetime | None, now: datetime) -> str:
    """``3m12s``, ``2d4h``: how long ago, to the two largest units."""
    if since is None:
        return "-"
    return duration(now - since)


def duration(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for unit, size in units:
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return "".join(parts)


def clock(when: datetime | None) -> str:
    """RFC 3339, as status and kubectl show times ("-" when unknown)."""
    return timestamp(when) if when is not None else "-"


def _bar(done: float, total: float, width: int = 30) -> Text:
    """``━━━━━━──────``: drawn with characters, so a pipe or a file shows the same progress as a terminal."""
    filled = round(width * min(max(done / total, 0.0), 1.0)) if total > 0 else width
    return Text("━" * filled, style="green") + Text("─" * (width - filled), style="dim")


def _row(label: str, *cells: RenderableType | str) -> list[RenderableType | str]:
    return [Text(label, style="bold"), *cells]


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    return grid


# --- status ----------------------------------------------------------------------------------------


def status_view(
    obj: Mapping[str, Any], route: RouteSeen | None, now: datetime, history_lines: int = 6
) -> Group:
    """The whole live view of one migration."""
    s = summarise(obj)
    status = load_status(obj.get("status"))
    spec = parse_spec(obj.get("spec"))
    parts: list[RenderableType] = [_header(s, spec), _headline(status)]
    if not isinstance(spec, str):
        parts += ["", _phases(spec, status, now), "", _details(spec, status, route, now)]
    if status.analysis is not None and (status.analysis.checks or status.analysis.triggers):
        parts += ["", _analysis(status, now)]
    parts += ["", _conditions(status, now)]
    if status.history:
        parts += ["", history_table(status.history[-history_lines:], title="History (latest last)")]
    return Group(*parts)


def _header(s: Summary, spec: Hal9MigrationSpec | str) -> Text:
    text = Text()
    text.append(f"Hal9Migration {s.namespace}/{s.name}", style="bold")
    seen = "not yet" if s.observed_generation is None else str(s.observed_generation)
    text.append(f"   generation {s.generation} (operator has seen {seen})")
    if not isinstance(spec, str):
        cap = f", traffic capped at {spec.traffic_split}%" if spec.traffic_split is not None else ""
        text.append(f"   target {spec.target_phase.value}{cap}")
        if spec.rehearsal:
            text.append("   REHEARSAL: the route object is never written, no Job runs", style="bold magenta")
    return text


def _headline(status: Hal9MigrationStatus) -> Text:
    condition = headline(status)
    if condition is None:
        return Text("No status yet: the operator has not seen this migration", style="yellow")
    text = Text(f"{condition.type} ({condition.reason})", style=_STYLE.get(condition.type, ""))
    if condition.message:
        text.append(f": {condition.message}", style="")
    return text


def _phases(spec: Hal9MigrationSpec, status: Hal9MigrationStatus, now: datetime) -> Table:
    """The five phases as a timeline: done, current (with its step), ahead with the earliest time
    each can begin, and those beyond the declared target."""
    here = phases.at(status.position)
    path = phases.path(spec)
    ahead = timeline.plan(spec, status.position, now)
    begins: dict[Phase, datetime | None] = {}
    for step in ahead.steps:
        if step.position.phase is not None and step.position.phase not in begins:
            begins[step.position.phase] = step.reached
    table = Table(title="Phases", title_justify="left", box=None, padding=(0, 2), show_header=False)
    for _ in range(4):
        table.add_column(no_wrap=True)
    number = phases.phase_number(here)
    for phase in Phase:
        steps = [p for p in path if p.phase is phase]
        if phase.number < number:
            mark, style, when = "✔", "green", "done"
        elif phase.number == number:
            taken = phases.taken_at(status.position) if status.position else None
            mark, style, when = "▶", "bold cyan", f"since {clock(taken)}"
        elif steps:
            begin = begins.get(phase)
            mark, style = "·", ""
            if status.halt is not None:
                when = f"stopped ({status.halt.reason}): after a retry or a new spec"
            elif begin is not None:
                when = f"at the earliest {clock(begin)}"
            else:
                when = "after the state migration"
        else:
            mark, style, when = "-", "dim", "beyond the target"
        table.add_row(
            Text(mark, style=style), Text(phase.value, style=style), _steps(spec, phase, steps, here), when
        )
    return table


def _steps(
    spec: Hal9MigrationSpec, phase: Phase, steps: Sequence[phases.Position], here: phases.Position
) -> Text:
    if phase is Phase.SHADOW:
        mode = "through the shadow proxy" if shadowproxy.in_use(spec) else "mesh mirror"
        return Text(f"mirror {spec.phases.shadow.mirror_percent}% ({mode})")
    if phase is Phase.STATE_MIGRATION:
        return Text("state-migration Job, traffic held" if steps else "")
    text = Text()
    for position in steps:
        label = f"{position.weight}%"
        if position == here:
            text.append(f"[{label}]", style="bold cyan")
        else:
            text.append(label)
        text.append(" ")
    return text


def _details(
    spec: Hal9MigrationSpec, status: Hal9MigrationStatus, route: RouteSeen | None, now: datetime
) -> Table:
    grid = _grid()
    position = status.position
    here = phases.at(position)
    if position is not None and here.phase is not None:
        since = phases.taken_at(position)
        hold = timeline.least_hold(spec, here)
        of = phases.steps_in(spec, here.phase)
        label = f"{here.phase.value} step {here.step} of {of} ({here.weight}%)  since {clock(since)}"
        grid.add_row(*_row("Step", label))
        waiting = here != phases.path(spec)[-1] and status.halt is None  # at the target or stopped: no wait
        if hold is not None and hold > timedelta(0) and waiting:
            elapsed = min(now - since, hold)
            wait = Table.grid(padding=(0, 1))
            wait.add_row(
                _bar(elapsed.total_seconds(), hold.total_seconds()),
                f"{duration(elapsed)} of {duration(hold)}",
            )
            grid.add_row(*_row("Wait", wait))
    if status.gate is not None:
        gate = status.gate
        text = Text(f"{gate.name} ", style="bold")
        text.append(gate.verdict, style=_VERDICT.get(gate.verdict, ""))
        text.append(f" since {clock(parse_time(gate.since))}: {gate.reason}")
        deadline = parse_time(gate.since)
        if deadline is not None:
            text.append(f" (stalls at {clock(deadline + parse_duration(spec.progress_deadline))})")
        grid.add_row(*_row("Gate", text))
    if status.halt is not None:
        grid.add_row(*_row("Stopped", Text(f"{status.halt.reason}: {status.halt.message}", style="red")))
    if status.controls is not None and status.controls.paused_by:
        grid.add_row(*_row("Paused", f"by {status.controls.paused_by} (kubectl hal9 resume)"))
    state = status.state_migration
    if state is not None:
        grid.add_row(*_row("State", _state(state)))
    grid.add_row(*_row("Route", _route(route, status)))
    if status.shadow is not None:
        shadow = status.shadow
        proxy = f"{shadow.proxy}: " if shadow.proxy else ""
        flags = f"ready={'yes' if shadow.ready else 'no'} routed={'yes' if shadow.routed else 'no'}"
        grid.add_row(*_row("Shadow", f"{shadow.mode} {proxy}{flags} {shadow.message}".rstrip()))
    if status.health is not None and status.health.score is not None:
        grid.add_row(*_row("Health", _health(status)))
    if status.rollback is not None:
        rb = status.rollback
        retried = f"; retried by {rb.retried_by}" if rb.retried_by else ""
        grid.add_row(*_row("Rollback", Text(f"{rb.time} {rb.reason}: {rb.message}{retried}", style="red")))
    return grid


def _state(state: Any) -> RenderableType:
    row = Table.grid(padding=(0, 1))
    cells: list[RenderableType | str] = [state.state or "Pending"]
    if state.percent is not None:
        cells += [_bar(state.percent, 100), f"{state.percent}%"]
    if state.migrated is not None and state.total is not None:
        cells.append(f"{state.migrated:,}/{state.total:,} rows")
    if state.failed:
        cells.append(f"{state.failed:,} failed")
    if state.rate:
        cells.append(f"{state.rate:,.0f} rows/s")
    if state.eta_seconds is not None and state.state in ("Running", "Pending"):
        cells.append(f"ETA {duration(timedelta(seconds=state.eta_seconds))}")
    if state.validation:
        cells.append(state.validation)
    if state.last_error:
        cells.append(Text(state.last_error, style="red"))
    row.add_row(*cells)
    return row


def _route(route: RouteSeen | None, status: Hal9MigrationStatus) -> Text:
    if route is None:
        return Text("not read")
    where = f"{route.kind} {route.name}: "
    if route.problem is not None or route.routing is None:
        return Text(where + (route.problem or "unreadable"), style="red")
    seen = route.routing
    if seen.weight is None:
        return Text(where + "its weighted routes disagree with each other", style="red")
    text = Text(where)
    text.append(f"flat {100 - seen.weight}%  hierarchical {seen.weight}%", style="bold")
    text.append(f"  mirror {seen.mirror if seen.mirror is not None else '?'}%")
    if seen.detour:
        text.append(f"  flat's share through {seen.detour}")
    if seen.targeting:
        text.append(f"  targeting {', '.join(seen.targeting)}")
    if status.weight is not None and status.weight != seen.weight:
        text.append(f"  (status says {status.weight}%)", style="yellow")
    return text


def _health(status: Hal9MigrationStatus) -> str:
    health = status.health
    assert health is not None and health.score is not None
    inputs = [
        (name, value)
        for name, value in (
            ("error rate", health.error_rate),
            ("cpu %", health.cpu_percent),
            ("memory %", health.memory_percent),
            ("parity", health.parity),
        )
        if value is not None
    ]
    described = ", ".join(f"{name} {value:.4g}" for name, value in inputs)
    return f"{health.score:.3f}" + (f" ({described})" if described else "")


def _analysis(status: Hal9MigrationStatus, now: datetime) -> Table:
    run = status.analysis
    assert run is not None
    when = age(parse_time(run.last_run_time), now) + " ago" if run.last_run_time else "never"
    table = Table(
        title=f"Analysis: {run.verdict or '-'} (last run {when})",
        title_justify="left",
        box=None,
        padding=(0, 2),
    )
    for column in ("", "Check", "Value", "Verdict", "Why"):
        table.add_column(column)
    for kind, checks in (("gate", run.checks), ("trigger", run.triggers)):
        for check in checks:
            value = "-" if check.value is None else f"{check.value:.4g}"
            table.add_row(
                kind,
                check.name,
                value,
                Text(check.verdict, style=_VERDICT.get(check.verdict, "")),
                check.reason,
            )
    return table


def _conditions(status: Hal9MigrationStatus, now: datetime) -> Table:
    table = Table(title="Conditions", title_justify="left", box=None, padding=(0, 2))
    for column in ("Type", "Status", "Reason", "Age", "Message"):
        table.add_column(column, no_wrap=column != "Message")
    for c in status.conditions:
        style = _STYLE.get(c.type, "") if c.status == "True" else "dim"
        table.add_row(
            Text(c.type, style=style),
            c.status,
            c.reason,
            age(parse_time(c.last_transition_time), now),
            c.message,
        )
    return table


# --- history, list, plan ------------------------------------------------------------------------------


def history_table(entries: Sequence[HistoryEntry], title: str = "History") -> Table:
    table = Table(title=title, title_justify="left", box=None, padding=(0, 2))
    for column in ("Time", "From", "To", "Weight", "Reason", "Actor", "Message"):
        table.add_column(column, no_wrap=column != "Message")
    for e in entries:
        weight = "" if e.weight is None else f"{e.weight}%"
        table.add_row(
            e.time,
            e.from_phase.value if e.from_phase else "-",
            e.to_phase.value if e.to_phase else "-",
            weight,
            e.reason,
            e.actor,
            e.message,
        )
    return table


def list_table(summaries: Sequence[Summary], all_namespaces: bool) -> Table:
    table = Table(box=None, padding=(0, 3), pad_edge=False)
    columns = (["NAMESPACE"] if all_namespaces else []) + [
        "NAME",
        "PHASE",
        "STEP",
        "WEIGHT",
        "HEALTH",
        "STATE",
        "CONDITION",
    ]
    for column in columns:
        table.add_column(column, no_wrap=True)
    for s in summaries:
        cells = [s.namespace] if all_namespaces else []
        name = s.name + (" (rehearsal)" if s.rehearsal else "")
        cells += [
            name,
            s.phase,
            s.step or "-",
            "-" if s.weight is None else f"{s.weight}%",
            "-" if s.health is None else f"{s.health:.2f}",
            "-" if s.state_percent is None else f"{s.state_percent}%",
            s.condition,
        ]
        table.add_row(*cells)
    return table


def plan_lines(plan: timeline.Plan, now: datetime) -> Text:
    """One line per step (weight, mirror, earliest time), then its gate and targeting, indented."""
    text = Text(f"From {plan.here.label()} to {plan.target.label()}: ")
    text.append(
        {"forward": "walks forward", "back": plan.note, "at target": "already at the target"}[plan.direction]
    )
    text.append("\n")
    for step in plan.steps:
        p = step.position
        last = step is plan.steps[-1]
        mirror = (
            f"mirror {p.mirror}% through the shadow proxy"
            if step.through_proxy
            else f"mirror {step.route_mirror}%"
        )
        if step.current:
            earliest = f"now (since {clock(step.reached)})"
        elif step.reached is None:
            earliest = "after the state migration"
        else:
            earliest = f"at the earliest {clock(step.reached)} (+{duration(step.reached - now)})"
        text.append("▶ " if step.current else "  ", style="bold cyan")
        text.append(f"{p.phase.value if p.phase else '-'} {p.step}".ljust(18), style="bold")
        text.append(f"{p.weight}%".rjust(4) + f"   {mirror}   {earliest}\n")
        if last:
            text.append("      holds here: the declared target\n")
            continue
        held = f"; held at least {duration(step.hold)}" if step.hold else ""
        text.append(f"      gate {step.gate}: {'; '.join(step.criteria)}{held}\n")
        if step.targeting:
            text.append(f"      targeting (first match wins): {', '.join(step.targeting)}\n")
    return text
