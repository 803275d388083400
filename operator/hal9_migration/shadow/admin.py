"""The admin port: ``GET /metrics`` for Prometheus, ``GET /divergences`` for people, ``GET /healthz``.

On its own port so that a scrape or a probe never goes through the proxied path (and the proxied
path forwards every path, ``/metrics`` included, to flat). It runs on the proxy's loop: a scrape
renders the registry in about a millisecond, every 15 s or so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import cast

import httptools
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import ShadowMetrics
from .samples import DivergenceSamples


class AdminConnection(asyncio.Protocol):
    def __init__(
        self, metrics: ShadowMetrics, samples: DivergenceSamples, stopping: Callable[[], bool]
    ) -> None:
        self.metrics = metrics
        self.samples = samples
        self.stopping = stopping
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._url: list[bytes] = []
        self._head = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._head = False
            self._send(400, "Bad Request", b"malformed request\n", "text/plain", keep_alive=False)

    def on_message_begin(self) -> None:
        self._url = []

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = b"".join(self._url).partition(b"?")[0]
        keep_alive = self.parser.should_keep_alive()
        self._head = method == b"HEAD"
        if method not in (b"GET", b"HEAD"):
            self._send(405, "Method Not Allowed", b"GET only\n", "text/plain", keep_alive)
        elif path == b"/metrics":
            self._send(200, "OK", generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST, keep_alive)
        elif path == b"/divergences":
            self._send(200, "OK", self._divergences(), "application/json", keep_alive)
        elif path == b"/healthz":
            if self.stopping():
                self._send(503, "Service Unavailable", b"draining\n", "text/plain", keep_alive)
            else:
                self._send(200, "OK", b"ok\n", "text/plain", keep_alive)
        else:
            self._send(
                404, "Not Found", b"not found: /metrics, /divergences, /healthz\n", "text/plain", keep_alive
            )

    def _divergences(self) -> bytes:
        document = {
            "capacity": self.samples.capacity,
            "recorded": self.samples.recorded,
            "compared": self.metrics.compared_count,
            "parity": self.metrics.parity(),
            "samples": self.samples.newest_first(),
        }
        return json.dumps(document, indent=2).encode()

    def _send(self, status: int, reason: str, body: bytes, content_type: str, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.transport.write(head if self._head else head + body)
        if not keep_alive:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
