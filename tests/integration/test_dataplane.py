"""Real requests through a real Gateway API data plane (Envoy Gateway + Envoy): the HTTPRoute the
operator's own router renders does, in a proxy, what a migration promises its users.

Two local HTTP backends stand in for HAL9's flat and hierarchical systems, each on its own loopback
address (127.0.255.x: outside the node agent's pod-IP pool, 127.0.1.1-127.0.254.254), behind
selector-less Services whose EndpointSlices (``addressType: FQDN``, the address being the IP: the API
server refuses loopback IPs in IPv4 slices) this module writes. Every route's rules come from
``GatewayAPIRouter.set_routes``, as ``kube.py`` writes them.

Tolerances: Envoy Gateway turns backendRef weights into locality weights, which Envoy schedules
deterministically (DESIGN.md measured exactly 1,800/200 for 90/10); mirroring is a random draw per
request. Every share is checked within 4 standard deviations of a binomial draw of the expected share,
so the tests hold even if Envoy picked at random (a false failure about once in 16,000 runs), and still
tell apart the neighbouring canary steps (at 10 % of 2,000 the band is +-54, steps of 5 % are 100 apart).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
import pytest

from hal9_migration import models
from hal9_migration.testing.dataplane import DataPlane
from hal9_migration.traffic import Backends, GatewayAPIRouter, Routing
from tests.integration.conftest import Cluster, wait_until
from tests.support import traffic_objects as rt
from tests.support.dataplane import Backend, send

FLAT, HIER = rt.FLAT, rt.HIER
SERVICE_PORT = 8080
REQUESTS = 2000
BETA = rt.rule("beta", "Hierarchical", x_hal9_user_group={"exact": "beta"})


def band(requests: int, share: float) -> tuple[float, float]:
    """Expected count +- 4 standard deviations of a binomial draw (see the module docstring)."""
    expected = requests * share
    spread = 4 * math.sqrt(requests * share * (1 - share))
    return expected - spread, expected + spread


def within(count: int, requests: int, share: float) -> bool:
    low, high = band(requests, share)
    return low <= count <= high


@dataclass
class Hal9:
    """The two HAL9 stand-ins behind their Services in one namespace, and routes to them."""

    cluster: Cluster
    plane: DataPlane
    namespace: str
    flat: Backend
    hierarchical: Backend

    def __post_init__(self) -> None:
        self.api = kubernetes.client.CustomObjectsApi(self.cluster.api)
        self.where = {
            "group": "gateway.networking.k8s.io",
            "version": "v1",
            "namespace": self.namespace,
            "plural": "httproutes",
        }

    def router(self, name: str) -> GatewayAPIRouter:
        config = models.GatewayAPIRouter(http_route=name, rules=["primary"])
        return GatewayAPIRouter(config, Backends(self.namespace, FLAT, HIER))

    def create_route(self, name: str, path: str, routing: Routing) -> None:
        """An HTTPRoute on the data plane's listener for ``path``, its rule ``primary`` splitting
        between both Services as the router renders ``routing``; returns once traffic flows."""
        template = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "parentRefs": [self.plane.parent_ref()],
                "rules": [
                    {
                        "name": "primary",
                        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                        "backendRefs": [
                            {"name": FLAT, "port": SERVICE_PORT},
                            {"name": HIER, "port": SERVICE_PORT},
                        ],
                    }
                ],
            },
        }
        self.api.create_namespaced_custom_object(
            body=self.router(name).set_routes(template, routing), **self.where
        )
        self.plane.wait_route(self.namespace, name, probe=path)

    def replace_route(self, name: str, routing: Routing) -> None:
        """What ``kube.py`` does on a step: GET, ``set_routes``, replace with the resourceVersion read."""
        current = self.api.get_namespaced_custom_object(name=name, **self.where)
        body = self.router(name).set_routes(current, routing)
        self.api.replace_namespaced_custom_object(name=name, body=body, **self.where)

    def send(self, path: str, count: int, headers: Mapping[str, str] | None = None) -> dict[str, int]:
        """Send ``count`` requests; returns how many each backend answered (by name)."""
        self.flat.reset()
        self.hierarchical.reset()
        answered = send(self.plane.listener_port, path, count, headers)
        # Every answer came from a backend that counted it: the body is no hearsay. (Hierarchical may
        # have received more: mirrored copies, whose answers Envoy drops.)
        assert answered[FLAT] == self.flat.received()
        assert answered[HIER] <= self.hierarchical.received()
        return {FLAT: answered[FLAT], HIER: answered[HIER]}

    def address(self, backend: Backend) -> str:
        return f"{backend.host}:{backend.port}"


def service_objects(namespace: str, name: str, backend: Backend) -> list[dict[str, Any]]:
    """A selector-less Service and the FQDN EndpointSlice pointing at ``backend`` (port names agree:
    Envoy Gateway matches the slice's port to the Service's by name)."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": backend.port}]},
    }
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-local",
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "tests.hal9.ai",
            },
        },
        "addressType": "FQDN",
        "endpoints": [{"addresses": [backend.host], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": backend.port, "protocol": "TCP"}],
    }
    return [service, endpoint_slice]


@pytest.fixture(scope="module")
def hal9(cluster: Cluster, dataplane: DataPlane) -> Iterator[Hal9]:
    namespace = f"dataplane-{uuid.uuid4().hex[:8]}"
    flat = Backend(FLAT, "127.0.255.1").start()
    hierarchical = Backend(HIER, "127.0.255.2").start()
    try:
        cluster.kubectl("create", "namespace", namespace)
        objects = service_objects(namespace, FLAT, flat) + service_objects(namespace, HIER, hierarchical)
        cluster.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objects))
        yield Hal9(cluster, dataplane, namespace, flat, hierarchical)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        flat.stop()
        hierarchical.stop()


def test_weights_split_traffic(hal9: Hal9) -> None:
    """90/10: of 2,000 requests about 200 reach hierarchical, and Envoy's own per-endpoint counters
    agree with what the backends counted."""
    hal9.create_route("weights", "/weights", Routing(weight=10))
    before = hal9.plane.endpoint_requests()
    answered = hal9.send("/weights", REQUESTS)
    after = hal9.plane.endpoint_requests()
    print(f"90/10 split: {answered}")
    assert answered[FLAT] + answered[HIER] == REQUESTS
    assert within(answered[HIER], REQUESTS, 0.10), (answered, band(REQUESTS, 0.10))
    for name, backend in ((FLAT, hal9.flat), (HIER, hal9.hierarchical)):
        address = hal9.address(backend)
        assert after.get(address, 0) - before.get(address, 0) == answered[name], (before, after)


def test_header_targeting_sends_every_match_to_hierarchical(hal9: Hal9) -> None:
    """A targeting rule (x-hal9-user-group: beta -> Hierarchical) wins over the 90/10 split for every
    matching request; other requests still follow the split."""
    hal9.create_route("targeting", "/targeting", Routing(weight=10, targeting=(BETA,)))
    beta = hal9.send("/targeting", 500, {"x-hal9-user-group": "beta"})
    others = hal9.send("/targeting", 500, {"x-hal9-user-group": "alpha"})
    print(f"beta: {beta}, alpha: {others}")
    assert beta == {FLAT: 0, HIER: 500}
    assert within(others[HIER], 500, 0.10), (others, band(500, 0.10))


def test_mirror_copies_a_share_to_hierarchical(hal9: Hal9) -> None:
    """Shadow at 25 %: flat answers everything, hierarchical receives a mirrored copy of about a
    quarter (counted on the backend: Envoy drops the mirrored answers)."""
    hal9.create_route("mirror", "/mirror", Routing(weight=0, mirror=25))
    address = hal9.address(hal9.hierarchical)
    before = hal9.plane.endpoint_requests().get(address, 0)
    answered = hal9.send("/mirror", REQUESTS)
    assert answered == {FLAT: REQUESTS, HIER: 0}
    # Envoy starts each mirrored request with the original, so by the time the last answer is back it
    # has counted them all; wait until the backend has received as many as Envoy sent.
    sent = hal9.plane.endpoint_requests().get(address, 0) - before
    wait_until(lambda: hal9.hierarchical.received() >= sent, 30, f"{sent} mirrored requests")
    mirrored = hal9.hierarchical.received()
    print(f"mirrored {mirrored} of {REQUESTS} (Envoy counted {sent})")
    assert mirrored == sent
    assert within(mirrored, REQUESTS, 0.25), (mirrored, band(REQUESTS, 0.25))


def test_weight_patch_takes_effect(hal9: Hal9) -> None:
    """A step from 90/10 to 50/50, written as the operator writes it, changes the split."""
    hal9.create_route("patch", "/patch", Routing(weight=10))
    assert within(hal9.send("/patch", 200)[HIER], 200, 0.10)
    patched = time.monotonic()
    hal9.replace_route("patch", Routing(weight=50))

    def split_changed() -> bool:
        return within(hal9.send("/patch", 200)[HIER], 200, 0.50)

    wait_until(split_changed, 30, "the 50/50 split to reach Envoy")
    print(f"50/50 in effect {time.monotonic() - patched:.3f}s after the replace")
    answered = hal9.send("/patch", REQUESTS)
    print(f"50/50 split: {answered}")
    assert within(answered[HIER], REQUESTS, 0.50), (answered, band(REQUESTS, 0.50))
