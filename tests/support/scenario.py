"""Whole migrations on real traffic: the HAL9 stand-ins behind a real Envoy (Envoy Gateway programs it
from the HTTPRoute the operator writes), a real Prometheus scraping them, and the real operator.

``Scenario`` builds the objects, sends load through the Gateway's listener, and records every version
of the HTTPRoute's weights from a watch, so a test can check the exact sequence the operator wrote.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import kubernetes

from hal9_migration.testing.dataplane import DataPlane
from hal9_migration.testing.loadgen import LoadGenerator
from hal9_migration.testing.prometheus import Prometheus
from tests.integration.conftest import Cluster, OperatorProcess, wait_until
from tests.support.traffic import Standins, wait_scraped

ROUTE = "hal9"
INTERVAL_SECONDS = 2
FAILURE_LIMIT = 2
# Latency of two stand-ins on one loaded 2-core machine differs by more than HAL9's 1.1 from scrape to
# scrape; the scenarios are about errors and weights, so the latency gates are wide.
LATENCY_RATIO = 3.0


def build_route(namespace: str, parent: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": ROUTE, "namespace": namespace},
        "spec": {
            "parentRefs": [parent],
            "rules": [
                {
                    "name": "primary",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": "hal9-flat", "port": 80, "weight": 100},
                        {"name": "hal9-hierarchical", "port": 80, "weight": 0},
                    ],
                }
            ],
        },
    }


PHASES = {
    # The mesh mirror (Envoy's RequestMirror); test_shadow_traffic.py covers the shadow proxy.
    "shadow": {"duration": "4s", "mirrorPercent": 100, "maxLatencyRatio": LATENCY_RATIO, "mode": "Mirror"},
    "canary": {"steps": [10, 25], "stepDuration": "4s"},
}


def build_migration(
    namespace: str, prometheus: str, rollback: dict[str, Any], phases: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "migration.hal9.ai/v1alpha1",
        "kind": "Hal9Migration",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {
            "flat": {"service": "hal9-flat", "deployment": "hal9-flat"},
            "hierarchical": {"service": "hal9-hierarchical", "deployment": "hal9-hierarchical"},
            "targetPhase": "Canary",
            "phases": phases or PHASES,
            "targeting": [
                {
                    "name": "beta-users",
                    "match": {"headers": {"x-hal9-user-group": {"exact": "beta"}}},
                    "route": "Hierarchical",
                }
            ],
            "trafficRouter": {"gatewayAPI": {"httpRoute": ROUTE, "rules": ["primary"]}},
            "analysis": {
                "prometheus": {"address": prometheus},
                "interval": f"{INTERVAL_SECONDS}s",
                "window": "5s",
                "failureLimit": FAILURE_LIMIT,
            },
            "rollback": rollback,
            "progressDeadline": "10m",
        },
    }


@dataclass(frozen=True)
class RouteVersion:
    at: float  # time.monotonic() when the watch saw it
    wall: float  # time.time() then, to compare with Prometheus' sample timestamps
    flat: int
    hierarchical: int
    mirrored: bool
    targeting: bool  # the operator's match rule for beta-users is there
    detour: str | None = None  # the Service in flat's place when it is not flat (the shadow proxy)


def route_version(obj: dict[str, Any], at: float, wall: float) -> RouteVersion:
    rules = obj["spec"].get("rules") or []
    primary = next(r for r in rules if r.get("name") == "primary")
    weights = {b["name"]: b.get("weight", 1) for b in primary.get("backendRefs", [])}
    mirrored = any(f.get("type") == "RequestMirror" for f in primary.get("filters") or [])
    targeting = any(r is not primary and "beta" in json.dumps(r.get("matches", [])) for r in rules)
    hierarchical = weights.pop("hal9-hierarchical", 0)
    (flat_slot, flat), *_ = weights.items()
    detour = None if flat_slot == "hal9-flat" else flat_slot
    return RouteVersion(at, wall, flat, hierarchical, mirrored, targeting, detour)


@dataclass
class RouteWatch:
    """Every version of the HTTPRoute, from a watch (not polling), in order."""

    api: kubernetes.client.ApiClient
    namespace: str
    versions: list[RouteVersion] = field(default_factory=list)
    error: str = ""  # the last exception the watch loop met (it restarts after one)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RouteWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(lambda: self.versions, 30, f"the HTTPRoute watch to see the route ({self.error})")
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        while not self._stop.is_set():
            watch = kubernetes.watch.Watch()
            try:
                for event in watch.stream(
                    custom.list_namespaced_custom_object,
                    "gateway.networking.k8s.io",
                    "v1",
                    self.namespace,
                    "httproutes",
                    field_selector=f"metadata.name={ROUTE}",
                    timeout_seconds=5,
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._see(event["object"])
                    if self._stop.is_set():
                        watch.stop()
            except Exception as error:  # a dropped watch is restarted; the next list re-reads the route
                self.error = f"{type(error).__name__}: {error}"
                time.sleep(0.2)

    def _see(self, obj: dict[str, Any]) -> None:
        version = route_version(obj, time.monotonic(), time.time())
        last = self.versions[-1] if self.versions else None
        if last is None or (last.flat, last.hierarchical, last.mirrored, last.targeting, last.detour) != (
            version.flat,
            version.hierarchical,
            version.mirrored,
            version.targeting,
            version.detour,
        ):
            self.versions.append(version)

    def hierarchical_weights(self, since: float = 0.0) -> list[int]:
        return [v.hierarchical for v in self.versions if v.at >= since]

    def at_weight(self, weight: int) -> bool:
        return bool(self.versions) and self.versions[-1].hierarchical == weight


@dataclass
class Scenario:
    cluster: Cluster
    namespace: str
    dataplane: DataPlane
    prometheus: Prometheus
    standins: Standins
    operator: OperatorProcess
    watch: RouteWatch | None = None
    load: LoadGenerator | None = None

    def start(self, rollback: dict[str, Any], phases: dict[str, Any] | None = None) -> Scenario:
        wait_scraped(self.prometheus, self.namespace, pods=2)
        self.apply(build_route(self.namespace, self.dataplane.parent_ref()))
        self.dataplane.wait_route(self.namespace, ROUTE, probe="/healthz")
        self.watch = RouteWatch(self.cluster.api, self.namespace).start()
        self.load = LoadGenerator(
            self.dataplane.url + "/process", rate=40, duration=3600, concurrency=4
        ).start()
        self.apply(build_migration(self.namespace, self.prometheus.url, rollback, phases))
        return self

    def stop(self) -> None:
        if self.load is not None:
            self.load.stop()
        if self.watch is not None:
            self.watch.stop()

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def migration(self) -> dict[str, Any]:
        out = self.cluster.kubectl("get", "h9m", "m", "-n", self.namespace, "-o", "json").stdout
        return dict(json.loads(out))

    def condition(self, kind: str) -> tuple[str, str, str]:
        for c in self.migration().get("status", {}).get("conditions", []):
            if c["type"] == kind:
                return c["status"], c["reason"], c.get("message", "")
        return "", "", ""

    def wait_weight(self, weight: int, timeout: float = 120) -> None:
        assert self.watch is not None
        wait_until(
            lambda: self.watch is not None and self.watch.at_weight(weight),
            timeout,
            f"the HTTPRoute at hierarchical weight {weight} (seen: {self.watch.hierarchical_weights()})",
        )

    def wait_ready(self, timeout: float = 120) -> None:
        wait_until(lambda: self.condition("Ready")[:2] == ("True", "TargetReached"), timeout, "Ready")

    def set_errors(self, rate: float) -> None:
        """One real rollout of the hierarchical Deployment with the stand-in's error-rate knob."""
        self.set_knob("HAL9_ERROR_RATE", rate)

    def set_knob(self, knob: str, value: float) -> None:
        """One real rollout of the hierarchical Deployment with one of the stand-in's knobs set."""
        self.cluster.kubectl(
            "set", "env", "-n", self.namespace, "deployment/hal9-hierarchical", f"{knob}={value}"
        )
        self.cluster.kubectl(
            "rollout",
            "status",
            "-n",
            self.namespace,
            "deployment/hal9-hierarchical",
            "--timeout=60s",
            timeout=70,
        )

    def error_rate(self) -> float | None:
        return self.prometheus.value(
            f'sum(rate(hal9_errors_total{{namespace="{self.namespace}",system="hierarchical"}}[5s])) / '
            f'sum(rate(hal9_requests_total{{namespace="{self.namespace}",system="hierarchical"}}[5s]))'
        )
