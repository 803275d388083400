"""The shadow proxy as a real process between real HTTP servers (issue 9's acceptance, part 1).

Flat and hierarchical are the project's HAL9 stand-in (``hal9_migration.testing.standin``) run as
processes, or, where a test needs an answer the stand-in cannot give (exact odd bytes, chunked, a hung
or slamming server, a malformed answer), a scripted server on a real socket in this process. The proxy
is ``python -m hal9_migration.cli shadow-proxy``; what it counted is read from its ``/metrics`` as
Prometheus would. The stand-in picks diverging requests by a hash of the request, so the expected
counts are computed with its own functions and asserted exactly.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hal9_migration.testing.standin import Knobs, answer, request_key, unit_hash

MIGRATION = "m-test"
FAST = 0.5  # seconds: a bound on a primary answer on loopback, far under the shadow timeouts used


# -- processes -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def answers(port: int, path: str = "/healthz") -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running(
    command: list[str], ready_port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A process that is answering /healthz on ``ready_port``; stopped with SIGTERM (killed if it does
    not stop), its output shown if the test failed."""
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
        )
        try:
            wait_until(lambda: answers(ready_port) or process.poll() is not None, 20, f"{command[:4]}")
            if process.poll() is not None:
                output.seek(0)
                raise AssertionError(f"{command} exited {process.returncode}:\n{output.read()}")
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextlib.contextmanager
def standin(system: str, **knobs: str) -> Iterator[str]:
    """A HAL9 stand-in process; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "hal9_migration.testing.standin", "--system", system]
    with running([*command, "--host", "127.0.0.1", "--port", str(port)], port, env=knobs):
        yield f"http://127.0.0.1:{port}"


@dataclass
class Proxy:
    process: subprocess.Popen[str]
    port: int
    admin_port: int

    def metrics(self) -> Metrics:
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        connection.request("GET", "/metrics")
        return Metrics(connection.getresponse().read().decode())

    def divergences(self) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        connection.request("GET", "/divergences")
        response = connection.getresponse()
        assert response.status == 200
        return dict(json.loads(response.read()))

    def wait_compared(self, count: int, timeout: float = 10) -> Metrics:
        wait_until(
            lambda: self.metrics().value("hal9_shadow_compared_total") >= count, timeout, f"{count} compared"
        )
        time.sleep(0.05)  # nothing more must come
        metrics = self.metrics()
        assert metrics.value("hal9_shadow_compared_total") == count
        return metrics


@contextlib.contextmanager
def shadow_proxy(flat: str, hierarchical: str, *options: str) -> Iterator[Proxy]:
    port, admin_port = free_port(), free_port()
    command = [sys.executable, "-m", "hal9_migration.cli", "shadow-proxy", "--flat", flat]
    command += ["--hierarchical", hierarchical, "--listen", f"127.0.0.1:{port}"]
    command += ["--admin", f"127.0.0.1:{admin_port}", "--migration", MIGRATION, *options]
    with running(command, admin_port) as process:
        yield Proxy(process, port, admin_port)


@dataclass
class Metrics:
    """One scrape: sample name -> labels -> value. Every hal9_shadow_* series must carry the migration."""

    text: str
    samples: dict[str, dict[frozenset[tuple[str, str]], float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                if sample.name.startswith("hal9_shadow_"):
                    assert sample.labels.get("migration") == MIGRATION, sample
                self.samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[name][frozenset({"migration": MIGRATION, **labels}.items())]

    def divergences(self) -> dict[str, float]:
        return {
            kind: self.value("hal9_shadow_divergences_total", kind=kind)
            for kind in ("output", "confidence", "status", "error", "timeout")
        }


# -- callers -------------------------------------------------------------------------------------------


def post_inputs(port: int, inputs: list[str], path: str = "/process") -> list[tuple[int, bytes, float]]:
    """POST ``{"input": ...}`` for each input over one keep-alive connection: (status, body, seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for text in inputs:
        started = time.perf_counter()
        connection.request("POST", path, json.dumps({"input": text}), {"Content-Type": "application/json"})
        response = connection.getresponse()
        out.append((response.status, response.read(), time.perf_counter() - started))
    connection.close()
    return out


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Everything a server sends back for ``request`` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def key_of(text: str) -> bytes:
    return request_key(json.dumps({"input": text}).encode())


# -- scripted servers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass(frozen=True)
class Reply:
    """Bytes to send as they are (None: send nothing), then whether to close the connection. No bytes
    and no close: the server hangs on the request forever."""

    data: bytes | None
    close: bool = False


HANG = Reply(None)
SLAM = Reply(None, close=True)


class ScriptedServer:
    """A real HTTP/1.1 server on loopback (a thread per connection) that answers each request with the
    bytes a script gives, exactly, and records what it received."""

    def __init__(self, script: Callable[[Received], Reply]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[Received] = []
        self.connections = 0
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        with contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, target, _ = lines[0].split(b" ", 2)
                headers = [
                    (name.strip(), value.strip()) for name, _, value in (x.partition(b":") for x in lines[1:])
                ]
                request = Received(method, target, headers, b"")
                length = int((request.header(b"content-length") or [b"0"])[0])
                while len(buffer) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                request = Received(method, target, headers, buffer[:length])
                buffer = buffer[length:]
                self.received.append(request)
                reply = self.script(request)
                if reply.data is None and not reply.close:
                    self._stopped.wait()  # hang: never answer
                    return
                if reply.data is not None:
                    sock.sendall(reply.data)
                if reply.close or b"close" in b"".join(request.header(b"connection")).lower():
                    sock.close()
                    return

    def stop(self) -> None:
        self._stopped.set()
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def scripted(script: Callable[[Received], Reply]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    try:
        yield server
    finally:
        server.stop()


def response(status: str, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{header}\r\n" for header in headers)
    return f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nX-Odd-CASE:   spaced \r\nx-dup: 1\r\nx-dup: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
)
ODD_STATUS = response("418 I Am A Teapot Today", b'{"output": "tea"}', "content-type: application/json")
TEXT = response("201 Made It", b"plain text, not JSON\n", "Content-Type: text/plain")


def flat_script(request: Received) -> Reply:
    """Odd but valid answers whose exact bytes a caller must get."""
    path = request.target.partition(b"?")[0]
    if path == b"/chunked":
        return Reply(CHUNKED)
    if path == b"/teapot":
        return Reply(ODD_STATUS)
    if path == b"/text":
        return Reply(TEXT)
    if path == b"/until-close":  # no length: the body ends when the connection does
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until EOF", close=True)
    return Reply(response("200 OK", request.body or b"{}", "Content-Type: application/json"))


@pytest.fixture(scope="module")
def flat() -> Iterator[str]:
    """The faithful flat stand-in, shared: it has no per-request state that a test counts."""
    with standin("flat") as url:
        yield url


# -- parity --------------------------------------------------------------------------------------------

INPUTS = [f"request-{n}" for n in range(120)]


def test_identical_answers_give_parity_one(flat: str) -> None:
    with (
        standin("hierarchical") as hierarchical,
        shadow_proxy(flat, hierarchical, "--ignore-field", "system") as proxy,
    ):
        results = post_inputs(proxy.port, INPUTS)
        assert [status for status, _, _ in results] == [200] * len(INPUTS)
        metrics = proxy.wait_compared(len(INPUTS))
    assert metrics.value("hal9_shadow_requests_total") == len(INPUTS)
    assert metrics.divergences() == dict.fromkeys(("output", "confidence", "status", "error", "timeout"), 0.0)
    assert metrics.value("hal9_shadow_divergence_score_total") == 0
    assert metrics.value("hal9_shadow_parity_ratio") == 1.0
    assert metrics.value("hal9_shadow_shed_total") == 0
    assert metrics.value("hal9_shadow_in_flight") == 0
    for system in ("flat", "hierarchical"):
        assert metrics.value("hal9_shadow_upstream_duration_seconds_count", system=system) == len(INPUTS)


def test_a_shadow_percent_copies_exactly_that_share(flat: str) -> None:
    with (
        scripted(flat_script) as hierarchical,
        shadow_proxy(flat, hierarchical.url, "--shadow-percent", "25") as proxy,
    ):
        results = post_inputs(proxy.port, INPUTS[:40])
        metrics = proxy.wait_compared(10)
    assert [status for status, _, _ in results] == [200] * 40
    assert len(hierarchical.received) == 10
    assert metrics.value("hal9_shadow_requests_total") == 40
    assert metrics.value("hal9_shadow_shed_total") == 0


def test_an_unignored_field_that_differs_is_a_divergence(flat: str) -> None:
    # The stand-ins name themselves in "system": without --ignore-field every pair differs.
    with standin("hierarchical") as hierarchical, shadow_proxy(flat, hierarchical) as proxy:
        post_inputs(proxy.port, INPUTS[:10])
        metrics = proxy.wait_compared(10)
    assert metrics.value("hal9_shadow_divergences_total", kind="output") == 10
    assert metrics.value("hal9_shadow_parity_ratio") == 0.0


def test_differing_answers_count_exactly_the_requests_the_standin_diverges(flat: str) -> None:
    diverging = {text for text in INPUTS if unit_hash(key_of(text), b"divergence") < 0.3}
    assert 10 < len(diverging) < 70  # the knob really picks some, not all
    with (
        standin("hierarchical", HAL9_DIVERGENCE="0.3") as hierarchical,
        shadow_proxy(flat, hierarchical, "--ignore-field", "system") as proxy,
    ):
        post_inputs(proxy.port, INPUTS)
        metrics = proxy.wait_compared(len(INPUTS))
        samples = proxy.divergences()["samples"]
    assert metrics.divergences() == {
        "output": len(diverging),
        "confidence": 0,
        "status": 0,
        "error": 0,
        "timeout": 0,
    }
    assert metrics.value("hal9_shadow_divergence_score_total") == len(diverging)
    assert metrics.value("hal9_shadow_parity_ratio") == pytest.approx(1 - len(diverging) / len(INPUTS))
    assert {json.loads(sample["request"]["body"]["text"])["input"] for sample in samples} == diverging


def test_confidence_differences_score_half_beyond_the_tolerance(flat: str) -> None:
    shift = Knobs(confidence_shift=0.15)
    over = {
        text
        for text in INPUTS
        if abs(
            answer("hierarchical", key_of(text), shift)["confidence"]
            - answer("flat", key_of(text), Knobs())["confidence"]
        )
        > 0.1
    }
    assert 10 < len(over) < len(INPUTS)  # the shift is clamped at 1.0: some stay within the tolerance
    with (
        standin("hierarchical", HAL9_CONFIDENCE_SHIFT="0.15") as hierarchical,
        shadow_proxy(flat, hierarchical, "--ignore-field", "system") as proxy,
    ):
        post_inputs(proxy.port, INPUTS)
        metrics = proxy.wait_compared(len(INPUTS))
    assert metrics.divergences()["confidence"] == len(over)
    assert metrics.divergences()["output"] == 0
    assert metrics.value("hal9_shadow_divergence_score_total") == 0.5 * len(over)
    assert metrics.value("hal9_shadow_parity_ratio") == pytest.approx(1 - 0.5 * len(over) / len(INPUTS))


def test_a_wider_tolerance_forgives_the_same_shift(flat: str) -> None:
    with (
        standin("hierarchical", HAL9_CONFIDENCE_SHIFT="0.15") as hierarchical,
        shadow_proxy(
            flat, hierarchical, "--ignore-field", "system", "--confidence-tolerance", "0.2"
        ) as proxy,
    ):
        post_inputs(proxy.port, INPUTS[:40])
        metrics = proxy.wait_compared(40)
    assert metrics.value("hal9_shadow_parity_ratio") == 1.0


def test_failing_answers_are_status_divergences(flat: str) -> None:
    # The stand-in fails exactly floor(n x rate) of its first n requests.
    with (
        standin("hierarchical", HAL9_ERROR_RATE="0.25") as hierarchical,
        shadow_proxy(flat, hierarchical, "--ignore-field", "system") as proxy,
    ):
        results = post_inputs(proxy.port, INPUTS[:100])
        metrics = proxy.wait_compared(100)
    assert [status for status, _, _ in results] == [200] * 100  # callers only ever see flat
    assert metrics.divergences()["status"] == 25
    assert metrics.value("hal9_shadow_divergence_score_total") == 25
    assert metrics.value("hal9_shadow_parity_ratio") == 0.75


def test_an_unreachable_shadow_is_an_error_divergence_and_costs_the_caller_nothing(flat: str) -> None:
    with shadow_proxy(flat, f"http://127.0.0.1:{free_port()}", "--ignore-field", "system") as proxy:
        results = post_inputs(proxy.port, INPUTS[:20])
        metrics = proxy.wait_compared(20)
    assert [status for status, _, _ in results] == [200] * 20
    assert metrics.divergences()["error"] == 20
    assert metrics.value("hal9_shadow_upstream_errors_total", system="hierarchical", reason="connect") == 20
    assert metrics.value("hal9_shadow_parity_ratio") == 0.0


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (SLAM, "reset"),  # closes the connection on the request
        (Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ntoo short", close=True), "reset"),
        (Reply(b"this is not HTTP at all\r\n\r\n"), "malformed"),
    ],
)
def test_a_broken_shadow_answer_is_an_error_divergence(flat: str, reply: Reply, reason: str) -> None:
    with scripted(lambda _: reply) as hierarchical, shadow_proxy(flat, hierarchical.url) as proxy:
        results = post_inputs(proxy.port, INPUTS[:5])
        metrics = proxy.wait_compared(5)
    assert [status for status, _, _ in results] == [200] * 5
    assert metrics.divergences()["error"] == 5
    assert metrics.value("hal9_shadow_upstream_errors_total", system="hierarchical", reason=reason) == 5


def test_non_json_and_chunked_answers_compare_by_their_bytes() -> None:
    def differing(request: Received) -> Reply:
        if request.target == b"/text":
            return Reply(TEXT.replace(b"not JSON", b"NOT JSON"))
        return flat_script(request)

    with (
        scripted(flat_script) as flat_server,
        scripted(differing) as hierarchical,
        shadow_proxy(flat_server.url, hierarchical.url) as proxy,
    ):
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        for path in ("/chunked", "/teapot", "/text", "/chunked"):
            connection.request("GET", path)
            connection.getresponse().read()
        metrics = proxy.wait_compared(4)
    assert metrics.divergences()["output"] == 1  # /text only: chunked bodies are compared de-chunked
    assert metrics.value("hal9_shadow_divergence_score_total") == 1


# -- the caller's answer -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/chunked", "/teapot", "/text", "/until-close", "/json"])
def test_the_caller_gets_flats_exact_bytes(path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    with (
        scripted(flat_script) as flat_server,
        scripted(lambda _: Reply(response("500 Oops", b"no"))) as hierarchical,
        shadow_proxy(flat_server.url, hierarchical.url) as proxy,
    ):
        direct = raw_exchange(flat_server.port, request)
        via_proxy = raw_exchange(proxy.port, request)
        metrics = proxy.wait_compared(1)
    assert via_proxy == direct
    assert metrics.divergences()["status"] == 1  # and the shadow's 500 was seen, not sent


def test_the_caller_gets_the_standins_exact_bytes(flat: str) -> None:
    port = int(flat.rpartition(":")[2])
    body = json.dumps({"input": "exact"}).encode()
    request = (
        b"POST /process HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with standin("hierarchical") as hierarchical, shadow_proxy(flat, hierarchical) as proxy:
        for _ in range(5):  # the Date header has a 1 s resolution: retry across a tick
            via_proxy = raw_exchange(proxy.port, request)
            direct = raw_exchange(port, request)
            if via_proxy == direct:
                break
        assert via_proxy == direct
    assert via_proxy.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"system": "flat"' in via_proxy


def test_a_flat_that_fails_gets_the_caller_a_502_and_is_not_compared() -> None:
    with (
        scripted(lambda _: HANG) as hung_flat,
        scripted(lambda r: Reply(response("200 OK", b"{}"))) as hierarchical,
        shadow_proxy(hung_flat.url, hierarchical.url, "--primary-timeout", "0.3") as proxy,
    ):
        started = time.perf_counter()
        status, body, _ = post_inputs(proxy.port, ["x"])[0]
        elapsed = time.perf_counter() - started
        time.sleep(0.2)
        metrics = proxy.metrics()
    assert (status, body) == (502, b"shadow-proxy: flat did not answer (timeout)\n")
    assert 0.3 <= elapsed < 0.3 + FAST
    assert metrics.value("hal9_shadow_primary_failures_total") == 1
    assert metrics.value("hal9_shadow_upstream_errors_total", system="flat", reason="timeout") == 1
    assert metrics.value("hal9_shadow_compared_total") == 0

    with (
        standin("hierarchical") as hierarchical,
        shadow_proxy(f"http://127.0.0.1:{free_port()}", hierarchical) as proxy,
    ):
        results = post_inputs(proxy.port, ["a", "b"])
        time.sleep(0.2)
        metrics = proxy.metrics()
    assert [(status, body) for status, body, _ in results] == [
        (502, b"shadow-proxy: flat did not answer (connect)\n")
    ] * 2
    assert metrics.value("hal9_shadow_upstream_errors_total", system="flat", reason="connect") == 2
    assert metrics.value("hal9_shadow_compared_total") == 0
    assert metrics.value("hal9_shadow_requests_total") == 2


def test_pipelined_requests_are_answered_in_order(flat: str) -> None:
    texts = ["first", "second", "third"]
    requests = []
    for n, text in enumerate(texts):
        body = json.dumps({"input": text}).encode()
        close = b"Connection: close\r\n" if n == len(texts) - 1 else b""
        requests.append(
            b"POST / HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s" % (close, len(body), body)
        )
    with standin("hierarchical") as hierarchical, shadow_proxy(flat, hierarchical) as proxy:
        received = raw_exchange(proxy.port, b"".join(requests))
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 3
    outputs = [output.decode() for output in re.findall(rb'"output": "([^"]+)"', received)]
    assert outputs == [answer("flat", key_of(text), Knobs())["output"] for text in texts]


HEAD_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        more = sock.recv(65536)
        assert more, f"closed before {marker!r}: {data!r}"
        data += more
    return data


def test_head_expect_continue_and_malformed_requests() -> None:
    def script(request: Received) -> Reply:
        return Reply(HEAD_REPLY) if request.method == b"HEAD" else flat_script(request)

    with (
        scripted(script) as flat_server,
        scripted(script) as hierarchical,
        shadow_proxy(flat_server.url, hierarchical.url) as proxy,
    ):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            # A HEAD answer has a length but no body: the proxy must not wait for one, and the caller's
            # connection carries on.
            sock.sendall(b"HEAD /anything HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until(sock, b"\r\n\r\n") == HEAD_REPLY
            sock.sendall(b"GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert recv_until(sock, b'"tea"}') == ODD_STATUS
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(
                b"POST /json HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
                b"Connection: close\r\n\r\n"
            )
            assert recv_until(sock, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"hello")
            assert recv_until(sock, b"hello") == response(
                "200 OK", b"hello", "Content-Type: application/json"
            )
        refused = raw_exchange(proxy.port, b"NOT HTTP AT ALL\r\n\r\n")
        metrics = proxy.wait_compared(3)
    assert refused.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert metrics.value("hal9_shadow_requests_total") == 3
    assert metrics.value("hal9_shadow_parity_ratio") == 1.0
    assert [request.method for request in flat_server.received] == [b"HEAD", b"GET", b"POST"]
    assert all(request.header(b"expect") == [] for request in flat_server.received)


def test_request_bodies_reach_both_systems_and_the_hop_stays_behind() -> None:
    request = (
        b"POST /process?q=1 HTTP/1.1\r\nHost: proxy.example\r\nAuthorization: Bearer t0k3n\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
    )
    with (
        scripted(flat_script) as flat_server,
        scripted(flat_script) as hierarchical,
        shadow_proxy(flat_server.url, hierarchical.url) as proxy,
    ):
        answered = raw_exchange(proxy.port, request)
        metrics = proxy.wait_compared(1)
    assert answered.endswith(b"\r\n\r\nhello world")
    assert metrics.value("hal9_shadow_parity_ratio") == 1.0
    for server in (flat_server, hierarchical):
        (got,) = server.received
        assert (got.method, got.target, got.body) == (b"POST", b"/process?q=1", b"hello world")
        assert got.header(b"content-length") == [b"11"]
        assert got.header(b"host") == [f"127.0.0.1:{server.port}".encode()]
        assert got.header(b"authorization") == [b"Bearer t0k3n"]
        assert got.header(b"transfer-encoding") == got.header(b"connection") == []


def test_upstream_connections_are_kept_alive() -> None:
    with (
        scripted(flat_script) as flat_server,
        scripted(flat_script) as hierarchical,
        shadow_proxy(flat_server.url, hierarchical.url) as proxy,
    ):
        post_inputs(proxy.port, INPUTS[:30])
        proxy.wait_compared(30)
    assert flat_server.connections == 1
    assert hierarchical.connections <= 2  # the shadow may still be busy when the next one is due


# -- a hung shadow -------------------------------------------------------------------------------------


def test_a_hung_shadow_does_not_delay_the_primary(flat: str) -> None:
    with (
        scripted(lambda _: HANG) as hung,
        shadow_proxy(flat, hung.url, "--shadow-timeout", "2") as proxy,
    ):
        started = time.perf_counter()
        results = post_inputs(proxy.port, INPUTS[:50])
        elapsed = time.perf_counter() - started
        during = proxy.metrics()
        metrics = proxy.wait_compared(50, timeout=15)
    assert [status for status, _, _ in results] == [200] * 50
    slowest = max(seconds for _, _, seconds in results)
    assert slowest < FAST, f"a primary took {slowest:.3f} s with the shadow hung"
    assert elapsed < 2, "the 50 primaries waited for the shadow"
    assert during.value("hal9_shadow_in_flight") == 50
    assert metrics.divergences()["timeout"] == 50
    assert metrics.value("hal9_shadow_upstream_errors_total", system="hierarchical", reason="timeout") == 50
    assert metrics.value("hal9_shadow_in_flight") == 0
    assert metrics.value("hal9_shadow_shed_total") == 0
    assert metrics.value("hal9_shadow_parity_ratio") == 0.0


def test_beyond_the_in_flight_bound_the_shadow_is_shed(flat: str) -> None:
    with (
        scripted(lambda _: HANG) as hung,
        shadow_proxy(flat, hung.url, "--shadow-timeout", "3", "--max-in-flight", "5") as proxy,
    ):
        started = time.perf_counter()
        results = post_inputs(proxy.port, INPUTS[:50])
        during = proxy.metrics()
        elapsed = time.perf_counter() - started
        metrics = proxy.wait_compared(5, timeout=15)
    assert [status for status, _, _ in results] == [200] * 50
    assert max(seconds for _, _, seconds in results) < FAST
    assert elapsed < 3  # so the five were still in flight when the others came
    assert during.value("hal9_shadow_in_flight") == 5
    assert metrics.value("hal9_shadow_shed_total") == 45
    assert metrics.value("hal9_shadow_requests_total") == 50
    assert metrics.divergences()["timeout"] == 5  # shed pairs are not compared
    assert hung.connections == 5


# -- samples, admin, stop ------------------------------------------------------------------------------


def test_the_divergence_sample_is_bounded_and_redacted(flat: str) -> None:
    options = ["--samples", "5", "--redact-header", "X-Api-Key", "--redact-field", "input"]
    options += ["--redact-field", "meta.user"]
    with (
        standin("hierarchical", HAL9_DIVERGENCE="1") as hierarchical,
        shadow_proxy(flat, hierarchical, "--ignore-field", "system", *options) as proxy,
    ):
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        for n in range(12):
            body = json.dumps(
                {"input": f"secret-input-{n}", "meta": {"user": f"user-{n}@example.com", "n": n}}
            )
            headers = {
                "Authorization": f"Bearer secret-token-{n}",
                "X-Api-Key": f"secret-key-{n}",
                "X-Trace": f"t{n}",
            }
            connection.request("POST", f"/process?n={n}", body, headers)
            connection.getresponse().read()
        proxy.wait_compared(12)
        document = proxy.divergences()
    samples = document["samples"]
    assert (document["capacity"], document["recorded"], document["compared"]) == (5, 12, 12)
    assert [sample["request"]["path"] for sample in samples] == [f"/process?n={n}" for n in (11, 10, 9, 8, 7)]
    newest = samples[0]
    headers = dict(newest["request"]["headers"])
    assert (headers["Authorization"], headers["X-Api-Key"], headers["X-Trace"]) == (
        "<redacted>",
        "<redacted>",
        "t11",
    )
    assert json.loads(newest["request"]["body"]["text"]) == {
        "input": "<redacted>",
        "meta": {"user": "<redacted>", "n": 11},
    }
    assert (newest["kind"], newest["score"], newest["primary"]["status"], newest["shadow"]["status"]) == (
        "output",
        1.0,
        200,
        200,
    )
    assert json.loads(newest["shadow"]["body"]["text"])["system"] == "hierarchical"
    assert "secret" not in json.dumps(document) and "example.com" not in json.dumps(document)


def test_the_admin_port_answers_health_and_nothing_else() -> None:
    with scripted(flat_script) as flat_server, shadow_proxy(flat_server.url, flat_server.url) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=5)
        connection.request("GET", "/healthz")
        health = connection.getresponse()
        assert (health.status, health.read()) == (200, b"ok\n")
        connection.request("GET", "/nothing")  # same keep-alive connection
        assert connection.getresponse().status == 404
        metrics = proxy.metrics()
    assert metrics.value("hal9_shadow_compared_total") == 0
    assert str(metrics.value("hal9_shadow_parity_ratio")) == "nan"  # no comparison yet
    assert flat_server.received == []  # the admin port never forwards


def test_sigterm_stops_accepting_and_finishes_what_is_in_flight() -> None:
    with (
        standin("flat", HAL9_ADDED_LATENCY_MS="800") as slow_flat,
        standin("hierarchical") as hierarchical,
        shadow_proxy(slow_flat, hierarchical, "--ignore-field", "system") as proxy,
    ):
        result: list[tuple[int, bytes, float]] = []
        caller = threading.Thread(target=lambda: result.extend(post_inputs(proxy.port, ["in flight"])))
        caller.start()
        time.sleep(0.3)
        proxy.process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
        caller.join(10)
        assert proxy.process.wait(10) == 0
    assert [status for status, _, _ in result] == [200]
