"""Pods reach Services by name on the local control plane, as in a cluster: the node agent's
EndpointSlices for a Service with a ``spec.selector``, its per-pod hosts file and its service proxy.

The shadow proxy pod forwards to ``http://<service>.<namespace>.svc.cluster.local:<port>`` and sits
behind an ordinary Service itself, so this is what it relies on: a process in one pod reaches another
Deployment's Service by its full and its short names, at the Service's port (not the container's),
over keep-alive connections too; the Service's slice lists the pod at the resolved target port; and a
rollout of the target keeps the name answering, from the new pod, without a failed connection.

The client is a pod too (names resolve only inside pods): a small HTTP server that fetches what the
test asks it to, reached by the test at the client pod's own IP.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from hal9_migration.testing import controlplane
from hal9_migration.testing.standins import build_standin_deployment, standin_labels
from tests.integration.conftest import Cluster, wait_until
from tests.support.traffic import apply, http

pytestmark = pytest.mark.skipif(
    controlplane.use_existing_cluster(),
    reason="tests the local control plane's node agent, which HAL9_USE_EXISTING_CLUSTER replaces",
)

SERVICE = "flat"  # not the Deployment's name: the name resolves through the Service alone
SERVICE_PORT = 80  # the stand-in listens on 8090 ("http"): the proxy must translate
CLIENT_PORT = 8092

# The client pod: GET /fetch?url=U fetches U (a new connection each time); /burst?url=U&n=N sends N
# requests over one keep-alive connection; /hosts returns the /etc/hosts the pod sees.
CLIENT = r"""
import http.client, http.server, json, os, time, urllib.parse, urllib.request

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        status, body = 200, b""
        if url.path == "/hosts":
            with open("/etc/hosts", "rb") as hosts:
                body = hosts.read()
        elif url.path == "/fetch":
            try:
                with urllib.request.urlopen(query["url"], timeout=5) as response:
                    body = response.read()
            except Exception as error:
                status, body = 502, repr(error).encode()
        elif url.path == "/burst":
            target = urllib.parse.urlsplit(query["url"])
            conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=5)
            answered, started = 0, time.monotonic()
            for _ in range(int(query["n"])):
                conn.request("GET", f"{target.path}?{target.query}")
                response = conn.getresponse()
                response.read()
                answered += response.status == 200
            conn.close()
            body = json.dumps({"answered": answered, "seconds": time.monotonic() - started}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer((os.environ["POD_IP"], int(os.environ["PORT"])), Handler).serve_forever()
"""


def objects(namespace: str) -> list[dict[str, Any]]:
    """The flat stand-in behind an ordinary Service (selector, port 80 -> the named port "http"), and
    the client Deployment."""
    target = build_standin_deployment(namespace, "flat")
    # The node agent reports a pod Ready as soon as its process runs, a moment before it listens (it
    # runs no readiness probe): minReadySeconds keeps the old pod until the new one surely answers, even
    # on a loaded machine.
    target["spec"]["minReadySeconds"] = 5
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": namespace},
        "spec": {
            "selector": {"app": standin_labels("flat")["app"]},
            "ports": [{"name": "web", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }
    client = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "client", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "client"}},
            "template": {
                "metadata": {"labels": {"app": "client"}},
                "spec": {
                    "containers": [
                        {
                            "name": "client",
                            "image": "unused:latest",
                            "command": ["python", "-c", CLIENT],
                            "env": [
                                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                {"name": "PORT", "value": str(CLIENT_PORT)},
                            ],
                        }
                    ]
                },
            },
        },
    }
    return [target, service, client]


def pods(cluster: Cluster, namespace: str, app: str) -> list[dict[str, Any]]:
    found = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json")
    return list(json.loads(found.stdout)["items"])


class Client:
    def __init__(self, cluster: Cluster, namespace: str) -> None:
        def answering() -> str | None:
            running = [p for p in pods(cluster, namespace, "client") if p["status"].get("podIP")]
            if len(running) != 1:
                return None
            base = f"http://{running[0]['status']['podIP']}:{CLIENT_PORT}"
            try:
                return base if http(base + "/hosts", timeout=2)[0] == 200 else None
            except OSError:
                return None

        self.base: str = wait_until(answering, 60, "the client pod to answer")

    def get(self, path: str, **query: str) -> tuple[int, bytes]:
        return http(f"{self.base}{path}?{urllib.parse.urlencode(query)}", timeout=30)

    def fetch(self, url: str) -> tuple[int, bytes]:
        return self.get("/fetch", url=url)

    def hosts(self) -> str:
        return self.get("/hosts")[1].decode()


def url(host: str) -> str:
    return f"http://{host}/process?input=open+the+pod+bay+doors"  # port 80: the Service's


@pytest.fixture
def client(cluster: Cluster, namespace: str) -> Client:
    apply(cluster, objects(namespace), namespace)
    return Client(cluster, namespace)


def test_a_pod_reaches_a_selector_service_by_its_names_at_the_service_port(
    cluster: Cluster, namespace: str, client: Client
) -> None:
    # The slice: the flat pod, at the named target port, under the Service's port name.
    [flat] = wait_until(
        lambda: [p for p in pods(cluster, namespace, "hal9-flat") if p["status"].get("podIP")],
        60,
        "the flat pod",
    )

    def listed() -> dict[str, Any] | None:
        found = cluster.kubectl(
            "get", "endpointslice", "-n", namespace, f"{SERVICE}-fqdn", "-o", "json", check=False
        )
        if found.returncode != 0:
            return None
        data: dict[str, Any] = json.loads(found.stdout)
        return data if data.get("endpoints") else None

    found = wait_until(listed, 30, "the Service's EndpointSlice to list the flat pod")
    service = json.loads(cluster.kubectl("get", "service", "-n", namespace, SERVICE, "-o", "json").stdout)
    assert found["addressType"] == "FQDN"
    assert [e["addresses"] for e in found["endpoints"]] == [[flat["status"]["podIP"]]]
    assert found["ports"] == [{"name": "web", "port": 8090, "protocol": "TCP"}]
    assert found["metadata"]["labels"]["kubernetes.io/service-name"] == SERVICE
    assert found["metadata"]["ownerReferences"][0]["uid"] == service["metadata"]["uid"]

    # Every name a pod in the namespace may use, at the Service's port 80.
    names = [
        f"{SERVICE}.{namespace}.svc.cluster.local",
        f"{SERVICE}.{namespace}.svc",
        f"{SERVICE}.{namespace}",
        SERVICE,
    ]
    for name in names:
        status, body = wait_until(
            lambda name=name: (answer := client.fetch(url(name)))[0] == 200 and answer,
            30,
            f"{name} to answer",
        )
        assert json.loads(body)["system"] == "flat", name
    direct = json.loads(
        http(f"http://{flat['status']['podIP']}:8090/process?input=open+the+pod+bay+doors")[1]
    )
    assert json.loads(client.fetch(url(SERVICE))[1]) == direct

    # The pod's /etc/hosts maps them all to one virtual IP, of the Services' range; ours does not.
    [line] = [line for line in client.hosts().splitlines() if line.endswith(f"\t{SERVICE}")]
    vip, *aliases = line.split("\t")
    assert aliases == names
    assert ipaddress.ip_address(vip) in ipaddress.ip_network("127.240.0.0/12")
    assert f"{SERVICE}.{namespace}" not in Path("/etc/hosts").read_text()

    # Keep-alive: many requests over one relayed connection.
    status, body = client.get("/burst", url=url(SERVICE), n="300")
    burst = json.loads(body)
    print(f"300 requests over one keep-alive connection through the service proxy in {burst['seconds']:.2f}s")
    assert (status, burst["answered"]) == (200, 300)


def test_a_rollout_of_the_target_keeps_its_name_answering_from_the_new_pod(
    cluster: Cluster, namespace: str, client: Client
) -> None:
    before = wait_until(
        lambda: (answer := client.fetch(url(SERVICE)))[0] == 200 and answer, 30, "the name to answer"
    )
    [old] = pods(cluster, namespace, "hal9-flat")
    baseline = json.loads(before[1])["output"]
    # HAL9_DIVERGENCE=1: the new pod answers every request differently, so answers tell the pods apart.
    cluster.kubectl("set", "env", "-n", namespace, "deployment/hal9-flat", "HAL9_DIVERGENCE=1")

    answers: list[tuple[int, bytes]] = []

    def rolled_over() -> bool:
        answers.append(client.fetch(url(SERVICE)))
        if len(answers) % 5:
            return False
        current = pods(cluster, namespace, "hal9-flat")
        return [p["metadata"]["uid"] for p in current] != [old["metadata"]["uid"]] and len(current) == 1

    wait_until(rolled_over, 60, "the old flat pod to be gone")
    for _ in range(20):
        answers.append(client.fetch(url(SERVICE)))
    failed = [body for status, body in answers if status != 200]
    assert not failed, failed
    outputs = [json.loads(body)["output"] for _, body in answers]
    assert outputs[-20:] == [outputs[-1]] * 20
    assert outputs[-1] != baseline  # the new pod's
