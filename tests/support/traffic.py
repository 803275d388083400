"""Fixtures and helpers for tests that send real traffic: the HAL9 stand-ins as pods, their FQDN
EndpointSlices, and a real Prometheus scraping them.

``start_standins`` and ``running_prometheus`` are the bodies of the fixtures ``standins`` and
``prometheus`` (tests/integration/conftest.py).

``standins`` applies the stand-in Deployments and Services to the test's namespace and waits until
each Service's slice lists a pod that answers; ``prometheus`` starts Debian's Prometheus for that
namespace (stopped after the test).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hal9_migration.testing.endpointslices import slice_name
from hal9_migration.testing.prometheus import Prometheus
from hal9_migration.testing.standin import DEFAULT_PORT, SYSTEMS
from hal9_migration.testing.standins import build_standins, standin_name
from tests.integration.conftest import Cluster, wait_until


def http(url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    """(status, body) of a GET, or of a POST when ``body`` is given; no exception for 4xx/5xx."""
    # S310: the tests' own http:// URLs.
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def ask(url: str, text: str) -> dict[str, Any]:
    """POST HAL9 a request and return its JSON answer (asserting a 200)."""
    status, body = http(url, json.dumps({"input": text}).encode())
    assert status == 200, (status, body)
    return dict(json.loads(body))


def apply(cluster: Cluster, objects: list[dict[str, Any]], namespace: str) -> None:
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": objects}),
    )


def slice_addresses(cluster: Cluster, namespace: str, service: str) -> list[str]:
    """The addresses in the Service's FQDN EndpointSlice ([] while it has none or does not exist)."""
    found = cluster.kubectl(
        "get", "endpointslice", "-n", namespace, slice_name(service), "-o", "json", check=False
    )
    if found.returncode != 0:
        return []
    return [a for e in json.loads(found.stdout).get("endpoints") or [] for a in e["addresses"]]


def answering_endpoint(
    cluster: Cluster, namespace: str, system: str, port: int = DEFAULT_PORT, timeout: float = 90
) -> str:
    """Wait until the system's slice lists exactly one address whose stand-in answers /healthz; its
    base URL. (The node agent reports a pod Ready once its process runs, a moment before it listens.)"""

    def ready() -> str | None:
        addresses = slice_addresses(cluster, namespace, standin_name(system))
        if len(addresses) != 1:
            return None
        url = f"http://{addresses[0]}:{port}"
        try:
            return url if http(url + "/healthz", timeout=1)[0] == 200 else None
        except OSError:
            return None

    found: str = wait_until(ready, timeout, f"the {system} stand-in's slice to list one answering pod")
    return found


@dataclass
class Standins:
    namespace: str
    urls: dict[str, str]  # system -> http://<pod ip>:<port> of its current pod


def start_standins(cluster: Cluster, namespace: str) -> Standins:
    """The flat and hierarchical stand-ins as pods in the test's namespace, each answering."""
    apply(cluster, build_standins(namespace), namespace)
    return Standins(namespace, {system: answering_endpoint(cluster, namespace, system) for system in SYSTEMS})


def running_prometheus(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Prometheus]:
    """A real Prometheus scraping the test namespace's annotated pods every second."""
    server = Prometheus(tmp_path / "prometheus", Path(cluster.env["KUBECONFIG"]), namespaces=[namespace])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_scraped(server: Prometheus, namespace: str, pods: int, timeout: float = 60) -> None:
    """Until ``pods`` stand-in pods of ``namespace`` are scraped and up."""

    def up() -> bool:
        value = server.value(f'count(up{{namespace="{namespace}"}} == 1)')
        return value == pods

    wait_until(up, timeout, f"Prometheus to scrape {pods} stand-in pods in {namespace}")
