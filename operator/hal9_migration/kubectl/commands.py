"""The plugin's commands: each reads through ``client``, draws with ``views`` and returns an exit code.

The controls write only the engine's annotations (``migration.hal9.ai/<verb>=<actor>``), never the
spec, then wait for the operator to consume them and print what it recorded, so a person sees at once
what their promote or abort did (or why it did nothing).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import yaml
from rich.console import Console
from rich.live import Live

from .. import controls, plan, timeline, traffic
from ..inputs import load_status, parse_spec
from ..models import KIND, Hal9MigrationSpec, HistoryEntry, PositionRecord
from ..traffic.base import Router
from . import summary, views
from .client import Cluster, Rejected, Unreachable, merged

PIPE_WIDTH = 200


def _now() -> datetime:
    return datetime.now(UTC)


def _console(out: TextIO) -> Console:
    """A terminal is measured; a pipe or file gets wide lines (as kubectl's tables), not 80 columns."""
    width = None if out.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(file=out, highlight=False, soft_wrap=False, width=width)


def _dump(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


# --- list and history ----------------------------------------------------------------------------


def list_migrations(cluster: Cluster, all_namespaces: bool, output: str, out: TextIO) -> int:
    found = [summary.summarise(obj) for obj in cluster.list(all_namespaces)]
    if output == "json":
        _dump(out, {"items": [s.as_json() for s in found]})
    elif not found:
        where = "any namespace" if all_namespaces else f'namespace "{cluster.namespace}"'
        out.write(f"No Hal9Migrations in {where}.\n")
    else:
        _console(out).print(views.list_table(found, all_namespaces))
    return summary.worst([s.exit_code for s in found])


def history(cluster: Cluster, name: str, output: str, out: TextIO) -> int:
    obj = cluster.get(name)
    entries = load_status(obj.get("status")).history
    if output == "json":
        _dump(out, [e.model_dump(by_alias=True, exclude_none=True, mode="json") for e in entries])
    elif not entries:
        out.write(f"{name}: no history yet.\n")
    else:
        _console(out).print(views.history_table(entries, title=f"History of {cluster.namespace}/{name}"))
    return summary.AT_TARGET


# --- status ------------------------------------------------------------------------------------------


def _router(obj: Mapping[str, Any]) -> Router | None:
    spec = parse_spec(obj.get("spec"))
    if isinstance(spec, str):
        return None
    return traffic.router_for(spec, obj["metadata"]["namespace"], None)


@dataclass(frozen=True)
class RouteUnreadable:
    """The route object could not be read (e.g. RBAC lets you read the migration, not the route)."""

    why: str


def _read_route(cluster: Cluster, router: Router | None) -> dict[str, Any] | RouteUnreadable | None:
    if router is None:
        return None
    try:
        return cluster.read_route(router)
    except (Unreachable, Rejected) as error:
        return RouteUnreadable(str(error))


def _route_watch(cluster: Cluster, router: Router, stop: threading.Event) -> Iterator[Any]:
    """The route object's versions; a failure to read it shows in the view instead of ending it."""
    version = f"{router.group}/{router.version}"
    try:
        yield from cluster.watch(router.plural, version, router.backends.namespace, router.name, stop)
    except (Unreachable, Rejected) as error:
        yield RouteUnreadable(str(error))


def _route_seen(
    obj: Mapping[str, Any], route_obj: Mapping[str, Any] | RouteUnreadable | None
) -> views.RouteSeen | None:
    spec = parse_spec(obj.get("spec"))
    if isinstance(spec, str):
        return None
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    if isinstance(route_obj, RouteUnreadable):
        router = traffic.router_for(spec, namespace, None)
        return views.RouteSeen(router.kind, router.name, problem=f"cannot be read: {route_obj.why}")
    return views.route_seen(spec, namespace, name, route_obj)


def _status_json(obj: Mapping[str, Any], route: views.RouteSeen | None) -> dict[str, Any]:
    """The summary, the route object as read, and ``status`` exactly as the API server holds it."""
    seen = None
    if route is not None:
        routing = route.routing
        seen = {
            "kind": route.kind,
            "name": route.name,
            "problem": route.problem,
            "weight": routing.weight if routing else None,
            "mirror": routing.mirror if routing else None,
            "detour": routing.detour if routing else None,
        }
    return {
        **summary.summarise(obj).as_json(),
        "generation": obj["metadata"].get("generation"),
        "route": seen,
        "status": obj.get("status") or {},
    }


def status(cluster: Cluster, name: str, output: str, out: TextIO) -> int:
    obj = cluster.get(name)
    router = _router(obj)
    route = _route_seen(obj, _read_route(cluster, router))
    if output == "json":
        _dump(out, _status_json(obj, route))
    else:
        _console(out).print(views.status_view(obj, route, _now()))
    return summary.summarise(obj).exit_code


def watch(cluster: Cluster, name: str, output: str, timeout: float | None, out: TextIO) -> int:
    """Redraw on every change of the migration or of its route object (watches, not polling) until
    the migration settles (at its target, or needing a person), ``timeout`` passes, or it is deleted.

    On a terminal the view is redrawn in place (and twice a second, so the wait's progress bar moves
    without asking the API server anything); to a pipe each change prints the view anew; with
    ``--output json`` each change prints one JSON line."""
    stop = threading.Event()
    latest: dict[str, Any] = {"obj": cluster.get(name)}
    router = _router(latest["obj"])
    latest["route"] = _read_route(cluster, router)
    sources: list[Iterator[Any]] = [cluster.migration_watch(name, stop)]
    if router is not None:
        sources.append(_route_watch(cluster, router, stop))
    if timeout is not None:
        timer = threading.Timer(timeout, stop.set)
        timer.daemon = True
        timer.start()
    tty = out.isatty() and output != "json"
    console = _console(out)

    def view() -> Any:
        obj = latest["obj"]
        return views.status_view(obj, _route_seen(obj, latest["route"]), _now())

    def show() -> None:
        if output == "json":
            out.write(
                json.dumps(_status_json(latest["obj"], _route_seen(latest["obj"], latest["route"]))) + "\n"
            )
            out.flush()
        elif not tty:
            console.print(view())
            console.rule()

    def settled() -> bool:
        s = summary.summarise(latest["obj"])
        caught_up = s.observed_generation is not None and s.observed_generation >= s.generation
        return caught_up and s.exit_code != summary.MOVING

    live = Live(get_renderable=view, console=console, refresh_per_second=2) if tty else None
    try:
        if live is not None:
            live.start()
        for index, item in merged(stop, *sources):
            if index == 0 and item is None:
                out.write(f'Hal9Migration "{name}" was deleted.\n')
                return summary.UNREACHABLE
            latest["obj" if index == 0 else "route"] = item
            if live is not None:
                live.refresh()
            else:
                show()
            if settled():
                break
    finally:
        stop.set()
        if live is not None:
            live.stop()
    return summary.summarise(latest["obj"]).exit_code


# --- controls ------------------------------------------------------------------------------------


def actor(cluster: Cluster) -> str:
    """Who acts: the user the API server authenticates (what its audit log names too); failing that
    (an API server before 1.28), the local login name."""
    try:
        return cluster.whoami()
    except Rejected:
        return getpass.getuser()


def new_entries(before: Sequence[HistoryEntry], after: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """The entries recorded since ``before`` was read: what follows the longest start of ``after``
    that ends ``before`` (history keeps the last 100, and two entries may be equal to the second)."""
    for overlap in range(min(len(before), len(after)), 0, -1):
        if list(after[:overlap]) == list(before[len(before) - overlap :]):
            return list(after[overlap:])
    return list(after)


def _wait_for(
    cluster: Cluster, name: str, timeout: float, done: Callable[[Mapping[str, Any]], bool]
) -> Mapping[str, Any] | None:
    """The migration once ``done`` holds for it (watching, not polling), or None after ``timeout``."""
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.daemon = True
    timer.start()
    try:
        for _, obj in merged(stop, cluster.migration_watch(name, stop)):
            if obj is None:
                raise Unreachable(f'Hal9Migration "{name}" was deleted')
            if done(obj):
                return cast(Mapping[str, Any], obj)
        return None
    finally:
        stop.set()
        timer.cancel()


def control(
    cluster: Cluster, verb: controls.Verb, name: str, timeout: float, output: str, out: TextIO
) -> int:
    """Set the verb's annotation, wait until the operator has consumed it, print what it recorded.

    Exit 0 when acted on, 2 when the operator refused it (e.g. a promote at the target) or cannot
    act on controls now, 1 when it was not consumed within ``timeout`` (the annotation stays: it is
    acted on once the operator runs)."""
    key = controls.annotation(verb)
    obj: Mapping[str, Any] = cluster.get(name)
    blocked = summary.controls_blocked(load_status(obj.get("status")))
    if blocked is not None:
        out.write(f"{verb.value}: not sent: {blocked}\n")
        return summary.NEEDS_A_PERSON
    who = actor(cluster)

    def bookkeeping_clear(o: Mapping[str, Any]) -> bool:
        """The operator forgets a control it acted on once it sees the annotation gone; the same
        value set before that would be taken for the old one and dropped."""
        consumed = load_status(o.get("status")).controls
        return key not in (o["metadata"].get("annotations") or {}) and (
            consumed is None or consumed.consumed.get(verb.value) != who
        )

    if not bookkeeping_clear(obj):
        cleared = _wait_for(cluster, name, timeout, bookkeeping_clear)
        if cleared is None:
            out.write(f"{verb.value}: a {verb.value} by {who} is still being handled; try again\n")
            return summary.MOVING
        obj = cleared
    before = load_status(obj.get("status")).history
    try:
        cluster.annotate(name, {key: who})
    except Rejected as rejection:  # e.g. an admission webhook or policy refusing the change
        out.write(f"{verb.value}: {rejection}\n")
        return summary.NEEDS_A_PERSON
    latest = _wait_for(cluster, name, timeout, lambda o: key not in (o["metadata"].get("annotations") or {}))
    if latest is None:
        out.write(
            f"{verb.value}: not acted on within {timeout:g}s; the annotation {key}={who} stays and is "
            "acted on once the operator runs (is it running?)\n"
        )
        return summary.MOVING
    recorded = new_entries(before, load_status(latest.get("status")).history)
    mine = [e for e in recorded if e.actor == who]
    refused = not mine or any(e.reason.endswith("Ignored") for e in mine)
    if output == "json":
        entries = [e.model_dump(by_alias=True, exclude_none=True, mode="json") for e in recorded]
        _dump(out, {"control": verb.value, "actor": who, "acted": not refused, "history": entries})
    else:
        console = _console(out)
        if mine:
            console.print(f"{verb.value} by {who}: acted on by the operator.")
            console.print(views.history_table(recorded, title="What it did"))
        else:
            console.print(f"{verb.value} by {who}: removed by the operator without an entry of yours.")
    return summary.NEEDS_A_PERSON if refused else summary.AT_TARGET


# --- plan ----------------------------------------------------------------------------------------


def _manifests(path: str, stdin: TextIO) -> list[dict[str, Any]]:
    text = stdin.read() if path == "-" else Path(path).read_text()
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return [d for d in docs if d.get("kind") == KIND]


def plan_file(
    cluster: Cluster, path: str, output: str, out: TextIO, err: TextIO, stdin: TextIO = sys.stdin
) -> int:
    """Dry-run every Hal9Migration in the file on the API server, then print its plan from where the
    live migration of that name stands (or from the start). Nothing is written."""
    try:
        manifests = _manifests(path, stdin)
    except (OSError, yaml.YAMLError) as error:
        err.write(f"error: cannot read {path}: {error}\n")
        return summary.NEEDS_A_PERSON
    if not manifests:
        err.write(f"error: {path} holds no {KIND}\n")
        return summary.NEEDS_A_PERSON
    results, code, now = [], summary.AT_TARGET, _now()
    for manifest in manifests:
        try:
            applied = cluster.dry_run_apply(manifest)
        except Rejected as rejected:
            err.write(f"{rejected}\n")
            code = summary.NEEDS_A_PERSON
            continue
        spec = parse_spec(applied.get("spec"))
        meta = applied["metadata"]
        if isinstance(spec, str):  # admission let it through, the operator would not: say so the same way
            err.write(f"{KIND} {meta['namespace']}/{meta['name']}: the operator would stall it: {spec}\n")
            code = summary.NEEDS_A_PERSON
            continue
        live = cluster.find(meta["name"], meta["namespace"])
        record = _standing(cluster, live, spec, meta["namespace"], meta["name"])
        ahead = timeline.plan(spec, record, now)
        title = f"{KIND} {meta['namespace']}/{meta['name']} ({'live' if live else 'not created yet'})"
        results.append((title, ahead))
        if output == "json":
            continue
        console = _console(out)
        console.print(title, style="bold")
        console.print(views.plan_lines(ahead, now))
    if output == "json":
        _dump(out, [_plan_json(title, ahead) for title, ahead in results])
    return code


def _standing(
    cluster: Cluster, live: Mapping[str, Any] | None, spec: Hal9MigrationSpec, namespace: str, name: str
) -> PositionRecord | None:
    """Where the live migration stands as the operator would see it under ``spec`` (its record on the
    route object when newer than status; a rehearsal's own record while rehearsing), or None when
    there is no live migration."""
    if live is None:
        return None
    route_obj = _read_route(cluster, traffic.router_for(spec, namespace, None))
    memory = traffic.read_memory(route_obj) if isinstance(route_obj, dict) else None
    record = plan.load_record(memory) if memory and memory.get("migration") == name else None
    return plan.standing(load_status(live.get("status")), record, spec.rehearsal)


def _plan_json(title: str, ahead: timeline.Plan) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "object": title,
        "from": ahead.here.label(),
        "to": ahead.target.label(),
        "direction": ahead.direction,
        "note": ahead.note,
        "steps": [
            {
                "phase": s.position.phase.value if s.position.phase else None,
                "step": s.position.step,
                "weight": s.position.weight,
                "mirror": s.position.mirror,
                "routeMirror": s.route_mirror,
                "throughProxy": s.through_proxy,
                "targeting": list(s.targeting),
                "gate": s.gate,
                "criteria": list(s.criteria),
                "holdSeconds": s.hold.total_seconds() if s.hold is not None else None,
                "earliest": when(s.reached),
                "current": s.current,
            }
            for s in ahead.steps
        ],
    }
