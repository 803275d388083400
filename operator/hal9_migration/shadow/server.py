"""The shadow proxy: flat answers the caller, hierarchical gets a copy, the two answers are compared.

The primary path is the caller's latency, so it does as little as possible: parse the request, write
it to flat, write flat's raw response bytes back. Everything about hierarchical happens in a task of
its own that the primary path never awaits (``_shadow``): sending the copy, timing it out, comparing,
counting, keeping a sample. A slow, failing or hung hierarchical therefore costs the caller nothing;
its damage is bounded by ``--max-in-flight`` (beyond it the copy is shed, and counted) and by
``--shadow-timeout`` (after it the connection is closed and a ``timeout`` divergence counted).

A caller's connection is served one request at a time, in order: the next is read from the queue
after the previous one's answer is written, so pipelined requests are answered in order without
bookkeeping. Reading pauses while too many wait.

Stack: raw asyncio Protocols with httptools' parser on uvloop. Measured on one pinned core at 1,000
requests/s: aiohttp spent ~0.8 ms of CPU per request (and adds Date and Server headers, so callers
would not get flat's bytes); this stack adds ~0.3 ms at p50 (``make bench-shadow`` for today's figures).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import time
from collections import deque

import httptools

from .admin import AdminConnection
from .compare import compare_answers, failure_verdict
from .config import ProxyConfig
from .metrics import ShadowMetrics
from .samples import DivergenceSamples, Exchange
from .schedule import CopySchedule
from .upstream import Response, UpstreamFailure, UpstreamPool
from .wire import CONTINUE, Request, encode_request, plain_response, stream_transport

log = logging.getLogger(__name__)
MAX_QUEUED_PER_CONNECTION = 32  # pipelined requests read ahead before reading pauses


class ShadowProxy:
    """What all connections share: the two pools, the metrics, the samples, the shadow tasks."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.flat = UpstreamPool(config.flat)
        self.hierarchical = UpstreamPool(config.hierarchical)
        self.metrics = ShadowMetrics(config.migration)
        self.samples = DivergenceSamples(config.samples, config.redaction)
        self.callers: set[CallerConnection] = set()
        self.stopping = False
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._copies = CopySchedule(config.shadow_percent)
        self._flat_duration = self.metrics.upstream_duration["flat"]
        self._hierarchical_duration = self.metrics.upstream_duration["hierarchical"]

    async def handle(self, request: Request, caller: CallerConnection) -> bool:
        """Answer one request with flat's response and start its shadow; True when the caller's
        connection may carry another request."""
        metrics = self.metrics
        metrics.requests.inc()
        primary_outcome: asyncio.Future[Response | None] | None = None
        copied = self._copies.next_copied()  # outside --shadow-percent: not sent, shed nor compared
        if copied and metrics.in_flight_count < self.config.max_in_flight:
            loop = asyncio.get_running_loop()
            primary_outcome = loop.create_future()
            metrics.in_flight_count += 1  # counted now, so the bound holds before the task runs
            task = loop.create_task(self._shadow(request, primary_outcome))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
        elif copied:
            metrics.shed.inc()
        started = time.perf_counter()
        try:
            data = encode_request(request, self.flat.address, self.flat.host_header)
            response = await self.flat.exchange(data, request.is_head, self.config.primary_timeout)
        except UpstreamFailure as failure:
            metrics.upstream_errors["flat", failure.reason].inc()
            metrics.primary_failures.inc()
            caller.write(
                plain_response(502, "Bad Gateway", f"shadow-proxy: flat did not answer ({failure.reason})\n")
            )
            if primary_outcome is not None:
                primary_outcome.set_result(None)
            return request.keep_alive
        except BaseException:
            if primary_outcome is not None:
                primary_outcome.set_result(None)
            raise
        self._flat_duration.observe(time.perf_counter() - started)
        caller.write(response.raw)
        if primary_outcome is not None:
            primary_outcome.set_result(response)
        return request.keep_alive and response.keep_alive

    async def _shadow(self, request: Request, primary_outcome: asyncio.Future[Response | None]) -> None:
        """Send the copy to hierarchical, then compare its answer with flat's (when flat answered:
        with no reference there is nothing to compare, and a flat failure is counted as such)."""
        shadow: Response | UpstreamFailure
        started = time.perf_counter()
        try:
            data = encode_request(request, self.hierarchical.address, self.hierarchical.host_header)
            shadow = await self.hierarchical.exchange(data, request.is_head, self.config.shadow_timeout)
            self._hierarchical_duration.observe(time.perf_counter() - started)
        except UpstreamFailure as failure:
            shadow = failure
            self.metrics.upstream_errors["hierarchical", failure.reason].inc()
        except Exception:
            log.exception("shadow-proxy: sending a shadow request failed; the pair is not compared")
            return
        finally:
            self.metrics.in_flight_count -= 1
        primary = await primary_outcome
        if primary is None:
            return
        try:
            self._judge(request, primary, shadow)
        except Exception:
            log.exception("shadow-proxy: comparing a pair failed; the pair is not counted")

    def _judge(self, request: Request, primary: Response, shadow: Response | UpstreamFailure) -> None:
        """Compare, count, and keep a sample of a divergent pair."""
        if isinstance(shadow, Response):
            verdict = compare_answers(
                self.config.rules, primary.status, primary.body, shadow.status, shadow.body
            )
        else:
            verdict = failure_verdict(timed_out=shadow.reason == "timeout")
        self.metrics.record_verdict(verdict)
        if verdict.kind is None:
            return
        self.samples.record(
            method=request.method,
            target=request.target,
            request_headers=request.headers,
            request_body=request.body,
            primary=Exchange(primary.status, primary.body),
            shadow=(
                Exchange(shadow.status, shadow.body)
                if isinstance(shadow, Response)
                else Exchange(None, b"", shadow.reason)
            ),
            kind=verdict.kind.value,
            score=verdict.score,
            at=time.time(),
        )

    async def drain(self, timeout: float) -> None:
        """After SIGTERM (the listener already closed): close idle callers, let busy ones finish
        what they have read, let the shadow tasks finish (so their comparisons are counted)."""
        self.stopping = True
        for caller in list(self.callers):
            caller.close_if_idle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.callers or self._shadow_tasks) and loop.time() < deadline:
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self.flat.close()
        self.hierarchical.close()


class CallerConnection(asyncio.Protocol):
    """A caller's keep-alive connection: requests parsed into a queue, served in order."""

    def __init__(self, proxy: ShadowProxy) -> None:
        self.proxy = proxy
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._queue: deque[Request | bytes] = deque()  # bytes: a final answer of the proxy's own
        self._busy = False
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps only weak references
        self._paused = False
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._has_body = False
        self._expects_continue = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream_transport(transport)
        self.proxy.callers.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.proxy.callers.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(
                plain_response(501, "Not Implemented", "shadow-proxy: no protocol upgrades\n", False)
            )
        except httptools.HttpParserError:
            self._refuse(plain_response(400, "Bad Request", "shadow-proxy: malformed request\n", False))

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = []
        self._headers = []
        self._body = []
        self._has_body = False
        self._expects_continue = False

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            self._has_body = True
        elif lowered == b"expect" and value.lower() == b"100-continue":
            self._expects_continue = True

    def on_headers_complete(self) -> None:
        # The caller waits for 100 Continue before sending the body. Only sent when no earlier answer
        # is pending, so it cannot land in the middle of one; otherwise the caller sends after its
        # own short wait.
        if self._expects_continue and not self._busy and not self._queue:
            self.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        request = Request(
            method=parser.get_method(),
            target=b"".join(self._url),
            version=parser.get_http_version().encode(),
            headers=self._headers,
            body=b"".join(self._body),
            has_body=self._has_body,
            keep_alive=parser.should_keep_alive(),
        )
        self._queue.append(request)
        if len(self._queue) >= MAX_QUEUED_PER_CONNECTION and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        if not self._busy:
            self._busy = True
            self._task = asyncio.get_running_loop().create_task(self._serve())

    # serving

    async def _serve(self) -> None:
        """Answer the queued requests in order; close when one may not be followed by another."""
        try:
            while self._queue:
                if self.transport is None:
                    return  # the caller left: what it sent is not answered
                item = self._queue.popleft()
                if self._paused and len(self._queue) < MAX_QUEUED_PER_CONNECTION // 2:
                    self._paused = False
                    self.transport.resume_reading()
                if isinstance(item, bytes):
                    self.write(item)
                    self._close()
                    return
                if not await self.proxy.handle(item, self):
                    self._close()
                    return
            if self.proxy.stopping:
                self._close()
        except Exception:
            log.exception("shadow-proxy: serving a caller failed")
            self._close()
        finally:
            self._busy = False

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close_if_idle(self) -> None:
        if not self._busy and not self._queue:
            self._close()

    def _refuse(self, answer: bytes) -> None:
        """A request the proxy cannot forward: answered after the ones before it, then closed."""
        if self.transport is not None:
            self.transport.pause_reading()
        self._queue.append(answer)
        if not self._busy:
            self._busy = True
            self._task = asyncio.get_running_loop().create_task(self._serve())

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()  # flushes what was written first


async def serve(config: ProxyConfig) -> int:
    """Run until SIGTERM or SIGINT, then stop accepting, finish what is in flight and return 0."""
    loop = asyncio.get_running_loop()
    proxy = ShadowProxy(config)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        listener = await loop.create_server(
            lambda: CallerConnection(proxy), *config.listen, backlog=1024, reuse_address=True
        )
        admin = await loop.create_server(
            lambda: AdminConnection(proxy.metrics, proxy.samples, lambda: proxy.stopping),
            *config.admin,
            reuse_address=True,
        )
    except OSError as error:
        print(f"shadow-proxy: cannot listen: {error}", file=sys.stderr, flush=True)
        return 1
    # Everything allocated so far lives as long as the process: moved out of the collector's view, so
    # a full collection scans only what requests allocate (a pause in the proxy is every caller's).
    gc.freeze()
    print(
        f"shadow-proxy: listening on {_bound(listener)}, admin on {_bound(admin)};"
        f" flat {config.flat}, hierarchical {config.hierarchical}; migration {config.migration!r}",
        flush=True,
    )
    await stop.wait()
    listener.close()
    await proxy.drain(config.primary_timeout + config.shadow_timeout)
    admin.close()
    proxy.close()
    print(f"shadow-proxy: stopped; parity since start {proxy.metrics.parity()}", flush=True)
    return 0


def _bound(server: asyncio.AbstractServer) -> str:
    sockets = getattr(server, "sockets", None) or []
    return ", ".join("{}:{}".format(*sock.getsockname()[:2]) for sock in sockets)


def run(config: ProxyConfig) -> int:
    """The ``shadow-proxy`` command: the proxy on uvloop."""
    import uvloop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return uvloop.run(serve(config))
