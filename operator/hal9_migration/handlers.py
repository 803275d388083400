"""kopf wiring only: read the object, ask the pure core what to do, write status, post Events.

kopf tells us *when* to look (create, update, resume, and a periodic recheck); each pass reads the
object afresh, so a pass never acts on a body another pass has already moved past. Passes over one
object are serialised, and the status write is conditional on the resourceVersion read, so two
writers can never make status go backwards. Handlers return nothing, so kopf keeps its own
bookkeeping out of ``status``; its progress and last-handled configuration live in annotations.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
from typing import Any, cast

import kopf

from . import kube, plan
from .models import GROUP, PLURAL, VERSION

RESOURCE = (GROUP, VERSION, PLURAL)
# How often every migration is looked at again even if nothing about it changed: objects it refers
# to (Services, Deployments) can appear or vanish without touching the Hal9Migration.
RECHECK_SECONDS = float(os.environ.get("HAL9_RECHECK_SECONDS", "30"))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Timers need a finalizer (kopf stops them before the object goes); name it after the project.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # A deletion that arrives while a recheck pass runs in its thread waits for that pass to end.
    # kopf's defaults then look again only after 60 s, so a `kubectl delete` could hang for a minute.
    settings.background.instant_exit_timeout = 1.0
    settings.background.cancellation_polling = 2.0
    # Events say who wrote them (the "From" column of `kubectl describe`).
    settings.posting.reporting_component = "hal9-migration-operator"
    settings.posting.reporting_instance = socket.gethostname()
    kube.load_config()


@kopf.on.login()
def login(**kwargs: Any) -> Any:
    return kopf.login_via_client(**kwargs)


@kopf.on.resume(*RESOURCE)
def on_resume(name: str, namespace: str | None, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    reconcile(str(namespace), name, memo, logger)  # namespaced resource: always set


@kopf.on.create(*RESOURCE)
def on_create(name: str, namespace: str | None, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    reconcile(str(namespace), name, memo, logger)


@kopf.on.update(*RESOURCE, field="spec")
def on_update(name: str, namespace: str | None, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    reconcile(str(namespace), name, memo, logger)


@kopf.timer(*RESOURCE, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS)
def on_timer(name: str, namespace: str | None, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    reconcile(str(namespace), name, memo, logger)


def reconcile(namespace: str, name: str, memo: Any, logger: kopf.Logger) -> None:
    """One level-based pass: the same object and world always give the same status."""
    # kopf's memo is per object; the lock keeps the timer and the change handlers from interleaving.
    with memo.setdefault("pass_lock", threading.Lock()):
        obj = kube.read_migration(namespace, name)
        if obj is None:
            return
        generation = int(obj["metadata"].get("generation") or 0)
        spec = plan.parse_spec(obj.get("spec"))
        refs = kube.check_references(namespace, plan.references(spec)) if not isinstance(spec, str) else None
        observed = plan.Observed(missing=refs.missing, forbidden=refs.forbidden) if refs else plan.Observed()
        current = plan.load_status(obj.get("status"))
        decision = plan.decide(spec, generation, current, observed, datetime.datetime.now(datetime.UTC))
        if decision.changed:
            try:
                kube.patch_status(namespace, name, obj["metadata"]["resourceVersion"], decision.status)
            except kube.Conflict as conflict:
                raise kopf.TemporaryError(str(conflict), delay=1) from conflict
        # Only after the status landed: a retried pass must not announce twice.
        for event in decision.events:
            kopf.event(
                kopf.Body(cast(kopf.RawBody, obj)),
                type=event.type,
                reason=event.reason,
                message=event.message,
            )
        logger.info(
            "reconciled %s/%s generation %s: %s%s",
            namespace,
            name,
            generation,
            decision.summary,
            "" if decision.changed else " (no change)",
        )
