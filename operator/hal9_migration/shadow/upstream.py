"""Keep-alive connection pools to flat and hierarchical, one request at a time per connection.

Why not an HTTP client library: the caller must get flat's response *byte for byte* (status line,
header order and case, chunked framing), which clients re-encode or hide; and aiohttp's client costs
~0.8 ms of CPU per request on this machine, most of the proxy's whole budget. So a connection here is
an ``asyncio.Protocol`` feeding httptools' parser (llhttp, Node's parser, in C), keeping the raw bytes
it was fed for the caller and the de-chunked body for the comparison.

Each system gets its own pool, so a hung hierarchical can exhaust only its own connections. A
connection carries one request at a time and goes back to the pool only after a complete response
that allows keep-alive; anything else (a timeout, a parse error, a HEAD response, whose body length
the parser cannot know to skip) closes it. A request on a reused connection that the server closed
while it sat idle (the keep-alive race: nothing at all came back) is sent once more on a new one.

Timeouts are a ``call_later`` per request that fails the response future and aborts the connection:
a timed-out connection may still get the late answer, so it is never reused. (``asyncio.timeout``
costs ~11 us per use under uvloop, ``call_later`` ~2.5 us.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools

from .config import UpstreamAddress
from .wire import stream_transport

MAX_IDLE_PER_POOL = 512


class UpstreamFailure(Exception):
    """No proper response; ``reason`` is the ``reason`` label of hal9_shadow_upstream_errors_total
    (connect, reset, timeout, malformed)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _ClosedBeforeResponse(Exception):
    """The server closed the connection before a single byte of the response: on a reused connection,
    the keep-alive race, worth one more try on a new connection."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    raw: bytes  # exactly as received: what the caller gets
    body: bytes  # de-chunked: what is compared
    keep_alive: bool  # the upstream allowed another request: so may the caller's connection


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to a system; ``send`` one request, await its response."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.completed = 0  # responses received on this connection
        self.reusable = False
        self._waiter: asyncio.Future[Response] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head = False
        self._raw: list[bytes] = []
        self._body: list[bytes] = []
        self._framed = False  # Content-Length or Transfer-Encoding seen: the body does not end at EOF
        self._headers_done = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream_transport(transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.abort()  # bytes nobody asked for: the connection is out of step
            return
        self._raw.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamFailure("malformed", "the upstream switched protocols"))
        except httptools.HttpParserError as error:
            self._fail(UpstreamFailure("malformed", f"bad HTTP response: {error}"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost decides what the EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._framed and not self._head:
            self._complete()  # a body delimited by the end of the connection (HTTP/1.0 style)
        elif not self._raw:
            self._fail(_ClosedBeforeResponse())
        else:
            self._fail(UpstreamFailure("reset", "the connection closed before the response was complete"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            self.abort()  # a second response to one request: the connection is out of step

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._head and self.parser.get_status_code() >= 200:
            self._complete()  # no body follows, whatever Content-Length says

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._waiter is None or self._waiter.done():
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self._skip_interim()
            return
        self._complete()

    # the request side

    def send(self, data: bytes, head: bool, timeout: float) -> asyncio.Future[Response]:
        """Write one request; the future gets its response or an UpstreamFailure."""
        assert self.transport is not None
        self.reusable = False
        self._head = head
        self._raw = []
        self._body = []
        self._framed = False
        self._headers_done = False
        waiter: asyncio.Future[Response] = self.loop.create_future()
        self._waiter = waiter
        self._timer = self.loop.call_later(timeout, self._time_out, timeout)
        self.transport.write(data)
        return waiter

    def abort(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def _time_out(self, timeout: float) -> None:
        self._timer = None
        self._fail(UpstreamFailure("timeout", f"no complete response within {timeout:g} s"))

    def _skip_interim(self) -> None:
        """Drop a 1xx (103 Early Hints, a stray 100) and keep waiting for the final response: its
        head ends at the first blank line, and anything after it belongs to the final response."""
        received = b"".join(self._raw)
        end = received.find(b"\r\n\r\n")
        self._raw = [received[end + 4 :]] if end >= 0 else []
        self._body = []
        self._framed = False
        self._headers_done = False

    def _complete(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self._cancel_timer()
        # The caller's connection may go on when the upstream's could have (and the body did not end
        # with the connection); this connection is reused only if, besides, it is still open and not
        # in doubt (after a HEAD the parser would read the next response as this one's body).
        keep_alive = self.parser.should_keep_alive() and not self.closed
        response = Response(
            self.parser.get_status_code(), b"".join(self._raw), b"".join(self._body), keep_alive
        )
        self.completed += 1
        self.reusable = keep_alive and not self._head
        self._raw = []
        self._body = []
        waiter.set_result(response)
        if not self.reusable and not self.closed:
            self.abort()

    def _fail(self, error: Exception) -> None:
        self._cancel_timer()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class UpstreamPool:
    """Connections to one system: idle ones reused newest first (a few stay warm, the rest time
    out at the server), new ones opened on demand (the host resolved each time)."""

    def __init__(self, address: UpstreamAddress) -> None:
        self.address = address
        self.host_header = address.authority.encode()
        self._idle: list[UpstreamConnection] = []

    async def exchange(self, data: bytes, head: bool, timeout: float) -> Response:
        """Send one request and return its complete response, within ``timeout`` seconds (connecting
        included), or raise UpstreamFailure."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in (1, 2):
            connection = self._take_idle()
            if connection is None:
                connection = await self._connect(loop, deadline - loop.time())
            reused = connection.completed > 0
            try:
                response = await connection.send(data, head, max(deadline - loop.time(), 0.0))
            except _ClosedBeforeResponse:
                if reused and attempt == 1:
                    continue
                raise UpstreamFailure("reset", "the connection closed before any response") from None
            except BaseException:
                connection.abort()  # cancelled (shutdown) or failed: its state is unknown
                raise
            if connection.reusable:
                self._give_back(connection)
            return response
        raise AssertionError("unreachable")

    def close(self) -> None:
        for connection in self._idle:
            connection.abort()
        self._idle.clear()

    def _take_idle(self) -> UpstreamConnection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                return connection
        return None

    def _give_back(self, connection: UpstreamConnection) -> None:
        if len(self._idle) < MAX_IDLE_PER_POOL:
            self._idle.append(connection)
        else:
            connection.abort()

    async def _connect(self, loop: asyncio.AbstractEventLoop, timeout: float) -> UpstreamConnection:
        host, port = self.address.host, self.address.port
        if timeout <= 0:
            raise UpstreamFailure("timeout", "no time left to connect")
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(loop), host, port), timeout
            )
        except TimeoutError:
            raise UpstreamFailure("timeout", f"connecting to {host}:{port} took over {timeout:g} s") from None
        except OSError as error:  # refused, unreachable, a name that does not resolve
            raise UpstreamFailure("connect", f"{host}:{port}: {error.strerror or error}") from None
        return connection
