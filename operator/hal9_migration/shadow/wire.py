"""HTTP/1.1 messages as the proxy handles them: a caller's request, re-encoded for each upstream.

The request line, headers and body are forwarded as received, except what belongs to the hop between
caller and proxy (RFC 9110 §7.6.1: Connection and the headers it names, Keep-Alive, TE, Trailer,
Transfer-Encoding, Upgrade, Proxy-Connection) and two headers the proxy sets itself: ``Host`` (the
upstream's own authority, as nginx's ``proxy_pass`` does: a Service answers whatever name it was
reached by) and ``Content-Length`` (a chunked request body is forwarded de-chunked, with its length,
so both upstreams get the same bytes). ``Expect: 100-continue`` is answered by the proxy, which needs
the whole body before it can send it twice.

Responses are not re-encoded at all: the caller gets flat's bytes as they came.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import cast

from .config import UpstreamAddress

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"host",
        b"content-length",
    }
)


@dataclass(frozen=True)
class Request:
    """One request from a caller, body de-chunked. ``has_body`` says whether it was framed with a
    body at all (Content-Length or chunked), so a POST with an empty body keeps its
    ``Content-Length: 0`` while a GET does not gain one."""

    method: bytes
    target: bytes
    version: bytes  # b"1.1" or b"1.0": forwarded as is, so an HTTP/1.0 caller gets HTTP/1.0 semantics
    headers: list[tuple[bytes, bytes]]
    body: bytes
    has_body: bool
    keep_alive: bool

    @property
    def is_head(self) -> bool:
        return self.method == b"HEAD"


def encode_request(request: Request, upstream: UpstreamAddress, host_header: bytes) -> bytes:
    """The bytes sent to ``upstream`` for ``request``."""
    target = request.target
    if upstream.prefix and target.startswith(b"/"):
        target = upstream.prefix.encode() + target
    dropped = HOP_BY_HOP
    connection_named = [
        value for name, value in request.headers if name.lower() in (b"connection", b"proxy-connection")
    ]
    if connection_named:  # headers a Connection header names are hop-by-hop too
        named = {token.strip().lower() for value in connection_named for token in value.split(b",")}
        dropped = dropped | named
    lines = [b"%s %s HTTP/%s\r\nHost: %s\r\n" % (request.method, target, request.version, host_header)]
    for name, value in request.headers:
        if name.lower() not in dropped:
            lines.append(b"%s: %s\r\n" % (name, value))
    if request.has_body:
        lines.append(b"Content-Length: %d\r\n" % len(request.body))
    lines.append(b"\r\n")
    lines.append(request.body)
    return b"".join(lines)


def plain_response(status: int, reason: str, text: str, keep_alive: bool = True) -> bytes:
    """A short text/plain response the proxy itself gives (502, 400, ...)."""
    body = text.encode()
    connection = b"" if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        reason.encode(),
        len(body),
        connection,
        body,
    )


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def stream_transport(transport: asyncio.BaseTransport) -> asyncio.Transport:
    """A new connection's transport, with Nagle off: small requests and answers go out at once
    instead of waiting for the peer's delayed ACK (tens of ms a request otherwise)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return cast(asyncio.Transport, transport)  # uvloop's is not a subclass
