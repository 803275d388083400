"""A HAL9 stand-in server: answers like HAL9 and exports the metrics the operator's analysis reads
(test and demo code).

The migration is judged on traffic: error rate, p99 latency and output parity between the flat and the
hierarchical system. Tests and the demo need two real servers behind real Services whose behaviour can
be turned from healthy to failing by a real rollout (``kubectl set env deployment/hal9-hierarchical
HAL9_ERROR_RATE=0.3``), and whose metrics Prometheus really scrapes. This is that server::

    python -m hal9_migration.testing.standin --system hierarchical --host 127.0.1.5 --port 8090

``POST /`` or ``/process`` (or ``GET`` with ``?input=...``) answers
``{"output": ..., "confidence": ..., "system": ...}``. The output is a function of the request only, so
flat and hierarchical give the *same* output for the same request unless divergence is turned on; a
shadow comparison then finds exactly the requests the knob picked. ``/metrics`` exports
``hal9_requests_total{system}``, ``hal9_errors_total{system}``, ``hal9_request_duration_seconds{system}``
and the process metrics; ``/healthz`` answers 200 (503 while draining after SIGTERM).

Knobs, read from the environment at start (a bad value stops the server with a message, so a typo in
``kubectl set env`` shows as a crash-looping pod, not as a healthy one):

- ``HAL9_ERROR_RATE`` (0..1): that fraction of answers is a 500, spread evenly (every request is
  counted, and request n fails when floor((n+1)·rate) > floor(n·rate)): over any run of requests the
  error fraction is the knob's value to within one request, so tests assert tight bounds without
  flaking.
- ``HAL9_ADDED_LATENCY_MS`` (>= 0) and ``HAL9_LATENCY_JITTER_MS`` (>= 0): each answer waits
  latency ± a uniform jitter (never below 0).
- ``HAL9_DIVERGENCE`` (0..1): that fraction of *requests* (picked by a hash of the request, so a
  request diverges every time or never) gets a different output.
- ``HAL9_CONFIDENCE_SHIFT`` (-1..1): added to every confidence (clamped to 0..1).

Throughput: a threaded stdlib server with HTTP/1.1 keep-alive (one thread per connection). Measured
on the project's 2-core machine, shared, with ``loadgen`` on the same cores: 1,400-1,600 requests/s
over 1 to 16 connections, about 0.36 ms of server CPU per request; enough for a few hundred per second
per system with room to spare. (Before Nagle was turned off, 22 requests/s per connection: see Handler.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

SYSTEMS = ("flat", "hierarchical")
DEFAULT_PORT = 8090  # not 8080: Envoy Gateway listens on 8080/8081 on all interfaces
ERROR_RATE = "HAL9_ERROR_RATE"
ADDED_LATENCY_MS = "HAL9_ADDED_LATENCY_MS"
LATENCY_JITTER_MS = "HAL9_LATENCY_JITTER_MS"
DIVERGENCE = "HAL9_DIVERGENCE"
CONFIDENCE_SHIFT = "HAL9_CONFIDENCE_SHIFT"
KNOB_NAMES = (ERROR_RATE, ADDED_LATENCY_MS, LATENCY_JITTER_MS, DIVERGENCE, CONFIDENCE_SHIFT)
# Roughly geometric from 1 ms to 3 s, denser around the 100 ms Canary limit: histogram_quantile then
# resolves a p99 anywhere from ~1 ms to ~2 s to within one bucket's width.
DURATION_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
)  # fmt: skip
PATHS = ("/", "/process")
MAX_BODY = 1 << 20


class KnobError(ValueError):
    """A knob's value is not usable; the message names every bad variable and what it must be."""


@dataclass(frozen=True)
class Knobs:
    error_rate: float = 0.0
    added_latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    divergence: float = 0.0
    confidence_shift: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Knobs:
        """The knobs from ``env``; unset or empty means 0. Raises KnobError listing every bad value."""
        limits = {
            ERROR_RATE: (0.0, 1.0),
            ADDED_LATENCY_MS: (0.0, math.inf),
            LATENCY_JITTER_MS: (0.0, math.inf),
            DIVERGENCE: (0.0, 1.0),
            CONFIDENCE_SHIFT: (-1.0, 1.0),
        }
        values: dict[str, float] = {}
        problems: list[str] = []
        for name, (low, high) in limits.items():
            text = env.get(name, "").strip()
            try:
                value = float(text) if text else 0.0
            except ValueError:
                value = math.nan
            if not low <= value <= high:  # also refuses nan
                bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
                problems.append(f"{name}={env.get(name)!r}: must be a number {bounds}")
            values[name] = value
        if problems:
            raise KnobError("; ".join(problems))
        return cls(*(values[name] for name in KNOB_NAMES))


def request_key(body: bytes, query: str = "") -> bytes:
    """What identifies a request: its JSON body in canonical form (key order and spacing do not
    matter), else its raw bytes; a GET's query parameters count as a JSON object, so
    ``GET /?input=x`` and ``POST {"input": "x"}`` are the same request."""
    if not body and query:
        return json.dumps(dict(parse_qsl(query)), sort_keys=True, separators=(",", ":")).encode()
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return body


def unit_hash(key: bytes, salt: bytes) -> float:
    """A number in [0, 1) fixed by ``key``, independent for each ``salt``."""
    digest = hashlib.sha256(salt + b"\0" + key).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def answer(system: str, key: bytes, knobs: Knobs) -> dict[str, Any]:
    """The JSON answer to a request: the same for both systems unless a knob says otherwise."""
    diverged = unit_hash(key, b"divergence") < knobs.divergence
    output = "hal9:" + hashlib.sha256((b"diverged:" if diverged else b"output:") + key).hexdigest()[:16]
    base = 0.80 + 0.19 * unit_hash(key, b"confidence")
    confidence = min(1.0, max(0.0, base + knobs.confidence_shift))
    return {"output": output, "confidence": round(confidence, 4), "system": system}


class ErrorSchedule:
    """Which requests fail: exactly floor(n·rate) of the first n, spread evenly (thread-safe)."""

    def __init__(self, rate: float) -> None:
        self.rate = Fraction(rate).limit_denominator(1_000_000)
        self.count = 0
        self._lock = threading.Lock()

    def next_fails(self) -> bool:
        with self._lock:
            n = self.count
            self.count += 1
        return math.floor((n + 1) * self.rate) > math.floor(n * self.rate)


class Metrics:
    """The stand-in's own registry (not the global one, so several servers can run in one process)."""

    def __init__(self, system: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "hal9_requests", "Requests answered on / and /process", ["system"], registry=self.registry
        ).labels(system)
        self.errors = Counter(
            "hal9_errors", "Requests answered with a 5xx", ["system"], registry=self.registry
        ).labels(system)
        self.duration = Histogram(
            "hal9_request_duration_seconds",
            "Time to answer a request, added latency included",
            ["system"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        ).labels(system)


class StandIn(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of new keep-alive connections must not be refused

    def __init__(self, address: tuple[str, int], system: str, knobs: Knobs) -> None:
        if system not in SYSTEMS:
            raise ValueError(f"system must be one of {SYSTEMS}, not {system!r}")
        self.system = system
        self.knobs = knobs
        self.metrics = Metrics(system)
        self.errors = ErrorSchedule(knobs.error_rate)
        self.draining = False
        self._random = random.Random()  # noqa: S311 - jitter, not a secret
        super().__init__(address, Handler)

    def delay(self) -> float:
        """Seconds to wait before answering: added latency ± uniform jitter, never negative."""
        jitter = self.knobs.latency_jitter_ms
        spread = self._random.uniform(-jitter, jitter) if jitter else 0.0
        return max(0.0, self.knobs.added_latency_ms + spread) / 1000.0

    def drain_and_stop(self, seconds: float) -> None:
        """On SIGTERM: fail /healthz and keep answering for ``seconds`` (a router may still send
        requests until it sees the endpoint go), then stop."""
        self.draining = True

        def stop() -> None:
            time.sleep(seconds)
            self.shutdown()

        threading.Thread(target=stop, name="drain", daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a load generator reuses its connections
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed
    # ACK (40 ms), which capped a keep-alive connection at ~22 requests/s.
    disable_nagle_algorithm = True
    server: StandIn

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/healthz":
            self._send(
                503 if self.server.draining else 200, b"draining\n" if self.server.draining else b"ok\n"
            )
        elif path == "/metrics":
            self._send(200, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)
        elif path in PATHS:
            self._process(b"", urlsplit(self.path).query)
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._send(413, b"request body too large\n")
            return
        body = self.rfile.read(length) if length else b""
        if self.path.partition("?")[0] in PATHS:
            self._process(body, "")
        else:
            self._send(404, b"not found\n")

    def _process(self, body: bytes, query: str) -> None:
        server = self.server
        started = time.perf_counter()
        delay = server.delay()
        if delay:
            time.sleep(delay)
        server.metrics.requests.inc()
        if server.errors.next_fails():
            server.metrics.errors.inc()
            payload = {"error": "injected failure", "system": server.system}
            status = 500
        else:
            payload = answer(server.system, request_key(body, query), server.knobs)
            status = 200
        server.metrics.duration.observe(time.perf_counter() - started)
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a line per request would cost more than the answer at a few hundred per second."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hal9_migration.testing.standin", description=__doc__)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument(
        "--host",
        default=os.environ.get("POD_IP") or "127.0.0.1",
        help="address to listen on (default: $POD_IP, else 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--drain-seconds", type=float, default=1.0, help="keep answering after SIGTERM")
    args = parser.parse_args(argv)
    try:
        knobs = Knobs.from_env(os.environ)
    except KnobError as error:
        print(f"standin: refusing to start: {error}", file=sys.stderr)
        return 2
    server = StandIn((args.host, args.port), args.system, knobs)
    signal.signal(signal.SIGTERM, lambda *_: server.drain_and_stop(args.drain_seconds))
    print(f"standin: {args.system} on http://{args.host}:{args.port} with {knobs}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
