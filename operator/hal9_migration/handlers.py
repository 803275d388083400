"""kopf wiring only: read the object, ask the pure core what to do, act, patch status.

Handlers return nothing, so kopf keeps its own bookkeeping out of ``status``; its progress and
last-handled configuration live in annotations under the project's own prefix.
"""

from __future__ import annotations

import datetime
import os
import socket
from typing import Any

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
def on_resume(body: kopf.Body, logger: kopf.Logger, patch: kopf.Patch, **_: Any) -> None:
    reconcile(body, patch, logger)


@kopf.on.create(*RESOURCE)
def on_create(body: kopf.Body, logger: kopf.Logger, patch: kopf.Patch, **_: Any) -> None:
    reconcile(body, patch, logger)


@kopf.on.update(*RESOURCE, field="spec")
def on_update(body: kopf.Body, logger: kopf.Logger, patch: kopf.Patch, **_: Any) -> None:
    reconcile(body, patch, logger)


@kopf.timer(*RESOURCE, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS)
def on_timer(body: kopf.Body, logger: kopf.Logger, patch: kopf.Patch, **_: Any) -> None:
    reconcile(body, patch, logger)


def reconcile(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger) -> None:
    """One level-based pass: the same object and world always give the same status."""
    namespace = str(body.metadata.namespace)  # Hal9Migration is namespaced: always set
    generation = int(body.metadata.get("generation") or 0)
    spec = plan.parse_spec(dict(body.spec))
    observed = plan.Observed(
        missing=kube.missing(namespace, plan.references(spec)) if not isinstance(spec, str) else ()
    )
    current = plan.load_status(dict(body.status))
    decision = plan.decide(spec, generation, current, observed, datetime.datetime.now(datetime.UTC))
    if decision.changed:
        for key, value in decision.status.items():
            patch.status[key] = value
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    logger.info(
        "reconciled %s/%s generation %s: %s%s",
        namespace,
        body.metadata.name,
        generation,
        decision.summary,
        "" if decision.changed else " (no change)",
    )
