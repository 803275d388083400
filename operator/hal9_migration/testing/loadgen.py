"""A bounded HTTP load generator (test and demo code).

Tests compare what a router did with what it was told (a 90/10 split, a mirror, a failing canary), so
they need load that is *bounded* (a target rate, a duration or a request count, a fixed number of
connections: it never overruns a 2-core machine) and *counted* (responses by status, and by the
``system`` field of HAL9's JSON answer, which says which backend answered). Requests go out on a
schedule (request i at start + i/rate) over keep-alive connections, one per worker; when every worker
is busy the schedule slips instead of bursting. Each request's body is ``{"input": "request-<i>"}``
unless one is given, so the stand-in's per-request knobs (divergence) see distinct requests.

From a test::

    with LoadGenerator(url, rate=100, count=500) as load:
        result = load.wait(timeout=60)
    assert result.statuses[200] == 500

From the demo: ``python -m hal9_migration.testing.loadgen URL --rate 50 --duration 30``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Result:
    """What came back. ``statuses``: HTTP status -> count; ``systems``: the ``system`` field of JSON
    answers (whatever their status) -> count; ``failures``: requests with no HTTP answer at all, by
    exception name (connection refused, reset, timeout)."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    systems: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "elapsed_seconds": round(self.elapsed, 3),
            "rate": round(self.sent / self.elapsed, 1) if self.elapsed else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "systems": dict(sorted(self.systems.items())),
            "failures": dict(sorted(self.failures.items())),
        }


class LoadGenerator:
    """Sends requests from ``concurrency`` worker threads until ``duration`` seconds have passed or
    ``count`` requests were sent (whichever comes first; at least one of them is required)."""

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        duration: float | None = None,
        count: int | None = None,
        concurrency: int = 8,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> None:
        if rate <= 0 or concurrency < 1:
            raise ValueError("rate must be > 0 and concurrency >= 1")
        if duration is None and count is None:
            raise ValueError("give a duration, a count, or both: the load must end")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.rate = rate
        self.duration = duration
        self.count = count
        self.concurrency = concurrency
        self.headers = dict(headers or {})
        self.method = method.upper()
        self.body = body
        self.timeout = timeout
        self._result = Result()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next = 0
        self._started = 0.0
        self._ended: float | None = None

    # --- control ---------------------------------------------------------------------------------

    def start(self) -> LoadGenerator:
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._work, name=f"loadgen-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def wait(self, timeout: float | None = None) -> Result:
        """Wait for the load to end (raises TimeoutError if it has not after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError(f"the load on {self.url} did not end within {timeout}s")
        return self.result()

    def stop(self) -> Result:
        """End the load now: requests in flight finish (or time out), no new ones start."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.result()

    def run(self) -> Result:
        """Start and wait: the load as one blocking call."""
        return self.start().wait()

    def result(self) -> Result:
        """A snapshot of the counts so far (safe while the load runs)."""
        with self._lock:
            alive = any(t.is_alive() for t in self._threads)
            end = time.monotonic() if alive or self._ended is None else self._ended
            return Result(
                sent=self._result.sent,
                statuses=Counter(self._result.statuses),
                systems=Counter(self._result.systems),
                failures=Counter(self._result.failures),
                elapsed=end - self._started if self._started else 0.0,
            )

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # --- workers ---------------------------------------------------------------------------------

    def _take(self) -> tuple[int, float] | None:
        """The next request's index and due time, or None when the load is over."""
        with self._lock:
            index = self._next
            due = self._started + index / self.rate
            over_count = self.count is not None and index >= self.count
            # The duration bounds wall time: a schedule that slipped does not extend it.
            end = None if self.duration is None else self._started + self.duration
            over_time = end is not None and (due >= end or time.monotonic() >= end)
            if over_count or over_time or self._stop.is_set():
                return None
            self._next += 1
            return index, due

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _work(self) -> None:
        connection: http.client.HTTPConnection | None = None
        try:
            while (taken := self._take()) is not None:
                index, due = taken
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                if connection is None:
                    connection = self._connect()
                status, system, failure = self._send(connection, index)
                if failure:
                    connection.close()
                    connection = None
                with self._lock:
                    self._result.sent += 1
                    if failure:
                        self._result.failures[failure] += 1
                    else:
                        self._result.statuses[status] += 1
                    if system:
                        self._result.systems[system] += 1
                    self._ended = time.monotonic()
        finally:
            if connection is not None:
                connection.close()

    def _send(self, connection: http.client.HTTPConnection, index: int) -> tuple[int, str, str]:
        """(status, system, failure): failure is an exception name when no answer came."""
        body = None
        headers = dict(self.headers)
        if self.method in ("POST", "PUT", "PATCH"):
            body = self.body if self.body is not None else json.dumps({"input": f"request-{index}"}).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            connection.request(self.method, self._path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            return 0, "", type(error).__name__
        system = ""
        if data[:1] == b"{":
            try:
                found = json.loads(data).get("system")
            except ValueError:
                found = None
            system = found if isinstance(found, str) else ""
        return response.status, system, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hal9_migration.testing.loadgen", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    parser.add_argument("--duration", type=float, help="seconds to run")
    parser.add_argument("--count", type=int, help="requests to send")
    parser.add_argument("--concurrency", type=int, default=8, help="connections (default 8)")
    parser.add_argument("--method", default="POST")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--quiet", action="store_true", help="no progress line every second")
    args = parser.parse_args(argv)
    if args.duration is None and args.count is None:
        args.duration = 30.0
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            parser.error(f"header {header!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    load = LoadGenerator(
        args.url,
        rate=args.rate,
        duration=args.duration,
        count=args.count,
        concurrency=args.concurrency,
        headers=headers,
        method=args.method,
    ).start()
    try:
        while True:
            try:
                load.wait(timeout=1.0)
                break
            except TimeoutError:
                if not args.quiet:
                    print(json.dumps(load.result().summary()), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        load.stop()
    print(json.dumps(load.result().summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
