"""What each upstream receives for a caller's request: the same request, minus the caller's hop."""

from __future__ import annotations

from hal9_migration.shadow.config import UpstreamAddress
from hal9_migration.shadow.wire import Request, encode_request, plain_response

FLAT = UpstreamAddress("hal9-flat", 8090, "")


def request(**overrides: object) -> Request:
    fields: dict[str, object] = {
        "method": b"POST",
        "target": b"/process?x=1",
        "version": b"1.1",
        "headers": [
            (b"Host", b"proxy:8080"),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"2"),
        ],
        "body": b"{}",
        "has_body": True,
        "keep_alive": True,
    }
    fields.update(overrides)
    return Request(**fields)  # type: ignore[arg-type]


def test_the_request_is_forwarded_with_the_upstreams_host_and_its_length() -> None:
    assert encode_request(request(), FLAT, b"hal9-flat:8090") == (
        b"POST /process?x=1 HTTP/1.1\r\nHost: hal9-flat:8090\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )


def test_hop_by_hop_headers_and_those_connection_names_are_dropped() -> None:
    headers = [
        (b"Connection", b"keep-alive, X-Hop"),
        (b"Keep-Alive", b"timeout=5"),
        (b"X-Hop", b"1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"),
        (b"Expect", b"100-continue"),
        (b"Authorization", b"Bearer t"),
        (b"X-Request-Id", b"r1"),
    ]
    encoded = encode_request(request(headers=headers, body=b"hello"), FLAT, b"hal9-flat:8090")
    assert encoded == (
        b"POST /process?x=1 HTTP/1.1\r\nHost: hal9-flat:8090\r\nAuthorization: Bearer t\r\n"
        b"X-Request-Id: r1\r\nContent-Length: 5\r\n\r\nhello"
    )


def test_a_get_gains_no_length_and_an_empty_post_keeps_its_zero() -> None:
    get = request(method=b"GET", headers=[(b"Accept", b"*/*")], body=b"", has_body=False)
    assert encode_request(get, FLAT, b"h") == b"GET /process?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
    empty_post = request(headers=[], body=b"", has_body=True)
    assert (
        encode_request(empty_post, FLAT, b"h")
        == b"POST /process?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
    )


def test_the_path_prefix_and_the_callers_http_version() -> None:
    prefixed = UpstreamAddress("h", 80, "/v2")
    old = request(version=b"1.0", headers=[], body=b"", has_body=False, method=b"GET", target=b"/a")
    assert encode_request(old, prefixed, b"h") == b"GET /v2/a HTTP/1.0\r\nHost: h\r\n\r\n"


def test_the_proxys_own_answers() -> None:
    assert plain_response(502, "Bad Gateway", "flat did not answer\n") == (
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n\r\n"
        b"flat did not answer\n"
    )
    assert b"Connection: close\r\n" in plain_response(400, "Bad Request", "x", keep_alive=False)
