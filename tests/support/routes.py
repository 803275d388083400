"""Route objects in tests: the sample ones, and a recorder of every version the API server stores."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import yaml

from hal9_migration import traffic
from hal9_migration.models import Hal9MigrationSpec
from tests.support.manifests import SAMPLES

KINDS = {"istio": "VirtualService", "gatewayAPI": "HTTPRoute", "smi": "TrafficSplit"}


def sample_route(router: str, name: str = "hal9") -> dict[str, Any]:
    """The sample route object for ``router`` (istio, gatewayAPI, smi), without a namespace."""
    for doc in yaml.safe_load_all((SAMPLES / "hal9-routes.yaml").read_text()):
        if doc["kind"] == KINDS[router]:
            doc = copy.deepcopy(doc)
            doc["metadata"].pop("namespace", None)
            doc["metadata"]["name"] = name
            return dict(doc)
    raise KeyError(router)


def router_config(router: str, name: str = "hal9") -> dict[str, Any]:
    """The spec.trafficRouter value pointing at the sample route object."""
    return {
        "istio": {"istio": {"virtualService": name, "routes": ["primary"]}},
        "gatewayAPI": {"gatewayAPI": {"httpRoute": name, "rules": ["primary"]}},
        "smi": {"smi": {"trafficSplit": name}},
    }[router]


@dataclass
class Version:
    at: float  # time.monotonic() when the watch saw it
    obj: dict[str, Any]
    routing: traffic.ObservedRouting | None  # None when the object was deleted


@dataclass
class RouteRecorder:
    """Watches one route object and keeps every version the API server sends (a real watch)."""

    api: kubernetes.client.ApiClient
    namespace: str
    spec: Hal9MigrationSpec
    versions: list[Version] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.router = traffic.router_for(self.spec, self.namespace)
        self._watch = kubernetes.watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._stopped = threading.Event()

    def start(self) -> RouteRecorder:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()
        self._thread.join(10)

    def _run(self) -> None:
        api = kubernetes.client.CustomObjectsApi(self.api)
        resource_version = "0"
        while True:
            self._ready.set()
            try:
                for event in self._watch.stream(
                    api.list_namespaced_custom_object,
                    self.router.group,
                    self.router.version,
                    self.namespace,
                    self.router.plural,
                    field_selector=f"metadata.name={self.router.name}",
                    resource_version=resource_version,
                    timeout_seconds=300,
                ):
                    obj = event["object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    routing = None if event["type"] == "DELETED" else self._read(obj)
                    self.versions.append(Version(time.monotonic(), obj, routing))
            except Exception:  # the watch ended (stopped, or the server closed it): go on unless stopped
                time.sleep(0.1)
            if self._stopped.is_set():
                return

    def _read(self, obj: dict[str, Any]) -> traffic.ObservedRouting | None:
        try:
            return self.router.read_routes(obj)
        except traffic.RouteProblem:
            return None

    def weights(self) -> list[tuple[int | None, int | None]]:
        """Each distinct (weight, mirror) in the order the object held them (consecutive repeats once)."""
        out: list[tuple[int | None, int | None]] = []
        for version in self.versions:
            if version.routing is None:
                continue
            pair = (version.routing.weight, version.routing.mirror)
            if not out or out[-1] != pair:
                out.append(pair)
        return out
