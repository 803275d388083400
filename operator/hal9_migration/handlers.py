"""kopf wiring only: read the world, ask the pure core, write the route object, then status and Events.

One daemon per migration drives it: it runs a pass, then sleeps until the next step falls due, a
change to the object wakes it (the update handler), or the recheck interval passes (objects the
migration depends on, such as the route object or the Services, can change without touching it).
No busy polling: a migration whose next step is a day away sleeps (up to the recheck) for a day.

Each pass reads the object afresh; the route object is replaced with the resourceVersion read and
the status written conditionally on the migration's, so a concurrent writer causes a retry on fresh
data, never a lost edit. The route object is written first: it carries the operator's position
record, so a pass that dies before its status write is recovered from the route by the next one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import os
import socket
import time
from typing import Any, cast

import kopf

from . import analysiswatch, controls, exporter, kube, plan, shadowproxy, shadowwatch, statewatch, traffic
from .models import GROUP, PLURAL, VERSION, Hal9MigrationSpec

RESOURCE = (GROUP, VERSION, PLURAL)
# The longest a migration sleeps between passes: the route object and the workloads it names can
# change without touching the Hal9Migration.
RECHECK_SECONDS = float(os.environ.get("HAL9_RECHECK_SECONDS", "30"))
# kopf's own bookkeeping (progress, last-handled configuration) lives under this prefix, apart from
# the control annotations (``migration.hal9.ai/promote`` ...), so the two can never clash.
KOPF_PREFIX = f"kopf.{GROUP}"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    # Daemons need a finalizer (kopf stops them before the object goes); name it after the project.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # A deletion waits for the daemon to stop; do not let kopf's defaults make that a minute.
    settings.background.instant_exit_timeout = 1.0
    settings.background.cancellation_polling = 2.0
    # Events say who wrote them (the "From" column of `kubectl describe`).
    settings.posting.reporting_component = "hal9-migration-operator"
    settings.posting.reporting_instance = socket.gethostname()
    kube.load_config()


@kopf.on.startup()
async def size_the_pass_pool(**_: Any) -> None:
    """Passes run in the loop's default executor (``asyncio.to_thread`` keeps kopf's context
    variables, which ``kopf.event`` needs); asyncio's default of cpu+4 threads made hundreds of
    migrations queue for a thread while the API server had room."""
    executor = concurrent.futures.ThreadPoolExecutor(kube.PASS_THREADS, thread_name_prefix="pass")
    asyncio.get_running_loop().set_default_executor(executor)


@kopf.on.login()
def login(**kwargs: Any) -> Any:
    return kopf.login_via_client(**kwargs)


@kopf.on.event(*RESOURCE)
async def on_event(body: kopf.Body, memo: Any, **_: Any) -> None:
    """Wake the migration's daemon when its spec or control annotations change.

    A plain event handler, not ``on.update``: kopf would then patch its last-handled configuration
    into the object right after each change, racing the pass's conditional status write. Events of
    the operator's own status writes change neither, so they wake nothing.
    """
    seen = (body.metadata.get("generation"), tuple(controls.read(body.metadata.get("annotations"))))
    if memo.get("seen") != seen:
        memo["seen"] = seen
        _wake(memo).set()


@kopf.daemon(*RESOURCE, cancellation_timeout=10.0)
async def drive(
    name: str, namespace: str | None, memo: Any, stopped: Any, logger: kopf.Logger, **_: Any
) -> None:
    """Pass after pass until the migration is deleted; a failed pass is retried, never fatal."""
    wake = _wake(memo)
    try:
        await _drive(name, str(namespace), memo, stopped, logger, wake)
    finally:  # deleted (or the operator stops): its gauges go instead of freezing at their last value
        exporter.forget(str(namespace), name)


async def _drive(
    name: str, namespace: str, memo: Any, stopped: Any, logger: kopf.Logger, wake: asyncio.Event
) -> None:
    """The passes, each counted and timed in the operator's metrics."""
    failures = 0
    while not stopped:
        wake.clear()
        started = time.monotonic()
        try:
            delay = await asyncio.to_thread(reconcile, namespace, name, logger, memo)
            failures, result = 0, "ok"
        except kube.Conflict as conflict:
            logger.info("retrying on fresh data: %s", conflict)
            delay, result = 0.05, "conflict"
        except Exception as error:  # one object's failure must not stop its daemon
            failures += 1
            delay, result = min(2.0**failures, RECHECK_SECONDS), "error"
            logger.error("pass failed, retrying in %.0fs: %s: %s", delay, type(error).__name__, error)
        exporter.RECONCILES.labels(result).inc()
        exporter.RECONCILE_SECONDS.observe(time.monotonic() - started)
        await _sleep(wake, stopped, RECHECK_SECONDS if delay is None else min(delay, RECHECK_SECONDS))


def _wake(memo: Any) -> asyncio.Event:
    event = memo.get("wake")
    if event is None:
        event = memo["wake"] = asyncio.Event()
    return cast(asyncio.Event, event)


async def _sleep(wake: asyncio.Event, stopped: Any, seconds: float) -> None:
    """Until ``seconds`` pass, the object changes, or the daemon is stopped."""
    if seconds <= 0:
        return

    async def until_stopped() -> None:
        await stopped.wait()

    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(until_stopped())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def reconcile(namespace: str, name: str, logger: kopf.Logger, memo: Any) -> float | None:
    """One level-based pass; returns the seconds until something falls due (None: nothing timed)."""
    obj = kube.read_migration(namespace, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        exporter.forget(namespace, name)
        return None  # deleting a migration leaves the route object as it stands
    generation = int(obj["metadata"].get("generation") or 0)
    spec = plan.parse_spec(obj.get("spec"))
    current = plan.load_status(obj.get("status"))
    present = controls.read(obj["metadata"].get("annotations"))
    uid = str(obj["metadata"].get("uid") or "")
    observed, router, route_obj, view, state, run = plan.Observed(), None, None, None, None, None
    proxy: plan.ProxyView | None = None
    now = datetime.datetime.now(datetime.UTC)  # one clock for a pass, even when decided again
    if not isinstance(spec, str):
        refs = _references(memo, namespace, spec, generation)
        observed = plan.Observed(missing=refs.missing, forbidden=refs.forbidden)
        if not (refs.missing or refs.forbidden):
            router = traffic.router_for(spec, namespace, shadowproxy.proxy_name(name))
            route_obj = kube.read_route(router)
            view = _route_view(router, route_obj, spec, namespace, name)
            memory = view.memory if isinstance(view, plan.RouteView) else None
            if plan.observes_state(spec, current, memory):
                state = statewatch.observe(namespace, name, uid, spec, current.state_migration)
            detour = view.observed.detour if isinstance(view, plan.RouteView) else None
            if shadowproxy.observes(spec, current, detour):
                proxy = shadowwatch.observe(namespace, name, uid)
            request = plan.analysis_due(spec, current, memory, now, namespace, name)
            if request is not None:
                run = analysiswatch.measure(namespace, spec, request, now)

    def decide(route: plan.RouteView | traffic.RouteProblem | None) -> plan.Decision:
        return plan.decide(
            spec,
            generation,
            current,
            observed,
            now,
            name=name,
            route=route,
            controls=present,
            state=state,
            run=run,
            proxy=proxy,
        )

    decision = decide(view)
    wrote = False
    if decision.route is not None and router is not None and route_obj is not None:
        record = decision.route.record.model_dump(by_alias=True, exclude_none=True, mode="json")
        try:
            rendered = traffic.with_memory(
                router.set_routes(route_obj, decision.route.routing), {**record, "migration": name}
            )
        except traffic.RouteProblem as problem:  # e.g. more match routes than the CRD allows
            decision = decide(problem)
        else:
            if rendered != route_obj:
                kube.replace_route(router, rendered)
                wrote = True
    if decision.state is not None and not isinstance(spec, str):
        refused = statewatch.act(namespace, name, uid, spec, decision.state)
        if refused and state is not None:
            state = dataclasses.replace(state, job_problem=refused)
            decision = decide(view)
    if decision.proxy is not None and not isinstance(spec, str):
        # After the route write: a proxy is deleted only once no route object sends to it.
        cannot = shadowwatch.act(namespace, name, uid, spec, decision.proxy)
        if cannot and proxy is not None:
            proxy = dataclasses.replace(proxy, problem=cannot)
            decision = decide(view)
    if decision.changed:
        kube.replace_status(obj, decision.status)
    exporter.observe(
        namespace, name, spec, plan.load_status(decision.status), [e.reason for e in decision.events]
    )
    # Only after the status landed: a retried pass must not announce twice.
    for event in decision.events:
        kopf.event(
            kopf.Body(cast(kopf.RawBody, obj)), type=event.type, reason=event.reason, message=event.message
        )
    if decision.consume:
        kube.remove_annotations(
            namespace, name, {controls.annotation(c.verb): c.value for c in decision.consume}
        )
    logger.info(
        "reconciled %s/%s generation %s: %s%s",
        namespace,
        name,
        generation,
        decision.summary,
        "" if decision.changed or wrote else " (no change)",
    )
    return decision.requeue_after


def _references(memo: Any, namespace: str, spec: Hal9MigrationSpec, generation: int) -> kube.References:
    """The Services and Deployments the spec names, checked when the spec changes and then once per
    recheck interval while they are all there (four GETs on every pass were a third of the API load);
    a missing or forbidden one is looked for again on every pass."""
    cached = memo.get("references")
    now = time.monotonic()
    if cached is not None and cached[0] == generation and now - cached[1] < RECHECK_SECONDS:
        return cast(kube.References, cached[2])
    refs = kube.check_references(namespace, plan.references(spec))
    memo["references"] = None if (refs.missing or refs.forbidden) else (generation, now, refs)
    return refs


def _route_view(
    router: traffic.Router,
    obj: dict[str, Any] | None,
    spec: Hal9MigrationSpec,
    namespace: str,
    name: str,
) -> plan.RouteView | traffic.RouteProblem:
    """What the pure core needs to know about the route object."""
    if obj is None:
        return traffic.RouteProblem(
            "RouteNotFound",
            f"{router.kind} {namespace}/{router.name} not found; the migration resumes when it exists",
        )
    try:
        routing = router.read_routes(obj)
    except traffic.RouteProblem as problem:
        return problem
    memory = traffic.read_memory(obj)
    owner = memory.get("migration") if memory else None
    in_use = (
        f"{namespace}/{owner}"
        if isinstance(owner, str) and owner != name and kube.migration_exists(namespace, owner)
        else None
    )
    return plan.RouteView(
        observed=routing,
        memory=plan.load_record(memory) if owner == name else None,
        owner=in_use,
        unsupported=router.unsupported(shadowproxy.shadow_routing(spec)),
    )
