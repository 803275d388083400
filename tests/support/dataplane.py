"""The real data plane in tests: a session fixture starting Envoy Gateway + Envoy against the session's
control plane, local HTTP backends that say who they are and count what they receive, and a client
that sends requests through the Gateway's listener.

``running_dataplane`` is the body of the session fixture ``dataplane`` (tests/integration/conftest.py).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hal9_migration.testing.dataplane import DataPlane, envoy_gateway_binary
from tests.integration.conftest import Cluster


def running_dataplane(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    """Envoy Gateway + Envoy for the whole session (startup costs a few seconds, and its fixed ports
    allow one at a time). Only on the local control plane: it force-installs the Gateway API CRDs,
    which a test must never do to an existing cluster's."""
    if cluster.plane is None:
        pytest.skip("the data plane runs only against the local control plane")
    plane = DataPlane(
        kubeconfig=cluster.plane.kubeconfig,
        kubectl=cluster.kubectl_path,
        workdir=tmp_path_factory.mktemp("dataplane"),
        binary=envoy_gateway_binary(),
    )
    started = time.monotonic()
    with plane:
        print(f"data plane: {plane.url} served after {time.monotonic() - started:.1f}s")
        yield plane


class Backend:
    """A local HTTP server on its own loopback address: answers every GET with its name and counts
    what it receives. (Mirrored requests look like any other here: Envoy Gateway turns off Envoy's
    ``-shadow`` Host suffix, the mirror having a cluster of its own.)"""

    def __init__(self, name: str, host: str) -> None:
        self.name = name
        self._received = 0
        self._lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: Envoy reuses its upstream connections
            # Headers and body go out in two writes; with Nagle's algorithm on, the second waits for
            # Envoy's delayed ACK (40 ms a request).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                with backend._lock:
                    backend._received += 1
                body = backend.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Backend:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self._received = 0

    def received(self) -> int:
        with self._lock:
            return self._received


def send(port: int, path: str, count: int, headers: Mapping[str, str] | None = None) -> Counter[str]:
    """``count`` GETs through the listener on 127.0.0.1:``port`` over one keep-alive connection;
    returns how many each backend answered (by the name in the body). Any other answer fails."""
    answered: Counter[str] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(count):
            conn.request("GET", path, headers=dict(headers or {}))
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            assert response.status == 200, f"GET {path} answered {response.status}: {body}"
            answered[body] += 1
    finally:
        conn.close()
    return answered
