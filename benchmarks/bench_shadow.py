"""`make bench-shadow`: what the shadow proxy adds to a request, and how much it can carry.

In one run, against the same local upstream:

1. Latency at BENCH_RATE (1,000) requests/s, open loop: request i is due at start + i/rate whatever
   happened to the ones before (no coordinated omission), sent on an idle keep-alive connection of a
   pool (a request due while all are busy waits, and the wait counts), and timed from when it was
   *due* to its full response. First straight to the upstream (the baseline), then through the proxy
   (which sends every request to flat and a copy to hierarchical, and compares the answers).
   Printed: p50 / p99 of both, the difference (what the proxy adds) against the target (added p99 <
   2 ms), and the proxy's CPU while carrying the rate.
2. Maximum throughput, closed loop: BENCH_CONNECTIONS (64) connections each sending its next
   request as soon as the previous is answered, for BENCH_THROUGHPUT_SECONDS, direct and through the
   proxy, with the ratio.

BENCH_ROUNDS (3) rounds of BENCH_SECONDS (10) per measurement; the machine is shared and noisy, so the
round with the median added p99 is reported (every round is printed too).

Placement (2 cores): the proxy alone on core 0; this process (the load generator) and the upstreams
(two small uvloop + httptools servers, flat and hierarchical, each answering a fixed JSON in ~20 us)
on core 1. The baseline is measured with the same placement, so the difference is the proxy's hop: two
more loopback crossings, its parsing, and its share of core 0.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_shadow.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httptools
import uvloop

RATE = float(os.environ.get("BENCH_RATE", "1000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
THROUGHPUT_SECONDS = float(os.environ.get("BENCH_THROUGHPUT_SECONDS", "5"))
OPEN_LOOP_CONNECTIONS = 32
TARGET_ADDED_P99 = 0.002
WARMUP_SECONDS = 1.0

BODY = b'{"input": "bench"}'
REQUEST = (
    b"POST /process HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
ANSWER = b'{"output": "hal9:0123456789abcdef", "confidence": 0.9, "layer": "L3"}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(ANSWER),
    ANSWER,
)


# -- the upstream (a subprocess of this script) ------------------------------------------------------


class UpstreamServer(asyncio.Protocol):
    """Answers every request with RESPONSE on the same keep-alive connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)


async def serve_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(UpstreamServer, "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()


# -- the load generator --------------------------------------------------------------------------------


class Client(asyncio.Protocol):
    """One keep-alive connection; calls ``on_response(self, when)`` at each complete response."""

    def __init__(self, on_response: Callable[[Client, float], None]) -> None:
        self.on_response = on_response
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.due = 0.0
        self.sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.on_response(self, time.perf_counter())

    def send(self, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.sent = time.perf_counter()
        self.transport.write(REQUEST)


async def connect(port: int, count: int, on_response: Callable[[Client, float], None]) -> list[Client]:
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(count):
        _, client = await loop.create_connection(lambda: Client(on_response), "127.0.0.1", port)
        clients.append(client)
    return clients


@dataclass
class OpenLoopResult:
    from_due: list[float]  # seconds, due -> response: the latency a user sees
    from_send: list[float]  # seconds, send -> response: without the generator's own lateness

    def p(self, q: float, from_due: bool = True) -> float:
        values = sorted(self.from_due if from_due else self.from_send)
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def open_loop(port: int, rate: float, seconds: float) -> OpenLoopResult:
    """``rate`` x ``seconds`` requests on a fixed schedule (see the module's docstring)."""
    idle: deque[Client] = deque()
    waiting: deque[float] = deque()  # due times of requests that found no idle connection
    result = OpenLoopResult([], [])
    total = int(rate * seconds)
    finished = asyncio.get_running_loop().create_future()

    def on_response(client: Client, when: float) -> None:
        result.from_due.append(when - client.due)
        result.from_send.append(when - client.sent)
        if waiting:
            client.send(waiting.popleft())
        else:
            idle.append(client)
        if len(result.from_due) == total and not finished.done():
            finished.set_result(None)

    clients = await connect(port, OPEN_LOOP_CONNECTIONS, on_response)
    idle.extend(clients)
    start = time.perf_counter() + 0.01
    sent = 0
    while sent < total:
        now = time.perf_counter()
        while sent < total and start + sent / rate <= now:
            due = start + sent / rate
            if idle:
                idle.popleft().send(due)
            else:
                waiting.append(due)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    await asyncio.wait_for(finished, 30)
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return result


async def closed_loop(port: int, connections: int, seconds: float) -> float:
    """Requests per second with ``connections`` connections each sending back to back."""
    answered = 0
    end = 0.0

    def on_response(client: Client, when: float) -> None:
        nonlocal answered
        answered += 1
        if when < end:
            client.send(when)

    clients = await connect(port, connections, on_response)
    started = time.perf_counter()
    end = started + seconds
    for client in clients:
        client.send(started)
    await asyncio.sleep(seconds + 0.5)  # the last ones in flight finish
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return answered / (time.perf_counter() - started - 0.5)


# -- processes -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def process(command: list[str], cores: set[int] | None, ready: Callable[[], bool]) -> Iterator[int]:
    def pin() -> None:
        if cores:
            os.sched_setaffinity(0, cores)

    child = subprocess.Popen(command, preexec_fn=pin, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not ready():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start")
            time.sleep(0.05)
        yield child.pid
    finally:
        child.terminate()
        child.wait(20)


def accepts(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True

    return check


def scrape(admin_port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("hal9_shadow_") and "_bucket" not in line:
            name, _, value = line.rpartition(" ")
            values[name.partition("{")[0]] = float(value)
    return values


# -- the run -------------------------------------------------------------------------------------------


@dataclass
class Round:
    direct: OpenLoopResult
    proxied: OpenLoopResult
    proxy_cpu_percent: float
    direct_rps: float
    proxied_rps: float

    @property
    def added_p99(self) -> float:
        return self.proxied.p(0.99) - self.direct.p(0.99)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.3f} ms"


async def measure_round(flat_port: int, proxy_port: int, proxy_pid: int) -> Round:
    await open_loop(flat_port, RATE, WARMUP_SECONDS)
    direct = await open_loop(flat_port, RATE, SECONDS)
    await open_loop(proxy_port, RATE, WARMUP_SECONDS)
    cpu_before, wall_before = cpu_seconds(proxy_pid), time.perf_counter()
    proxied = await open_loop(proxy_port, RATE, SECONDS)
    cpu = (cpu_seconds(proxy_pid) - cpu_before) / (time.perf_counter() - wall_before) * 100
    direct_rps = await closed_loop(flat_port, CONNECTIONS, THROUGHPUT_SECONDS)
    proxied_rps = await closed_loop(proxy_port, CONNECTIONS, THROUGHPUT_SECONDS)
    return Round(direct, proxied, cpu, direct_rps, proxied_rps)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-upstream":
        uvloop.run(serve_upstream(int(sys.argv[2])))
        return 0
    available = sorted(os.sched_getaffinity(0))
    proxy_cores, load_cores = ({available[0]}, {available[1]}) if len(available) >= 2 else (None, None)
    if load_cores:
        os.sched_setaffinity(0, load_cores)
    flat_port, hierarchical_port, proxy_port, admin_port = (free_port() for _ in range(4))
    upstream = [sys.executable, __file__, "--serve-upstream"]
    proxy = [sys.executable, "-m", "hal9_migration.cli", "shadow-proxy", "--migration", "bench"]
    proxy += [
        "--flat",
        f"http://127.0.0.1:{flat_port}",
        "--hierarchical",
        f"http://127.0.0.1:{hierarchical_port}",
    ]
    proxy += ["--listen", f"127.0.0.1:{proxy_port}", "--admin", f"127.0.0.1:{admin_port}"]
    print(
        f"shadow proxy bench: {RATE:g} requests/s open loop, {ROUNDS} x {SECONDS:g} s per measurement;"
        f" proxy on cores {sorted(proxy_cores or available)},"
        f" load and upstreams on {sorted(load_cores or available)}",
        flush=True,
    )
    rounds = []
    with (
        process([*upstream, str(flat_port)], load_cores, accepts(flat_port)),
        process([*upstream, str(hierarchical_port)], load_cores, accepts(hierarchical_port)),
        process(proxy, proxy_cores, accepts(admin_port)) as proxy_pid,
    ):
        for number in range(1, ROUNDS + 1):
            result = uvloop.run(measure_round(flat_port, proxy_port, proxy_pid))
            rounds.append(result)
            print(
                f"round {number}: p50 {ms(result.direct.p(0.5))} -> {ms(result.proxied.p(0.5))},"
                f" p99 {ms(result.direct.p(0.99))} -> {ms(result.proxied.p(0.99))}"
                f" (added {ms(result.added_p99)}), proxy CPU {result.proxy_cpu_percent:4.1f} %,"
                f" max {result.direct_rps:7.0f} -> {result.proxied_rps:6.0f} requests/s",
                flush=True,
            )
        metrics = scrape(admin_port)
    median = sorted(rounds, key=lambda r: r.added_p99)[len(rounds) // 2]
    direct, proxied = median.direct, median.proxied
    added_p50 = proxied.p(0.5) - direct.p(0.5)
    met = median.added_p99 < TARGET_ADDED_P99
    print()
    print(f"median round (by added p99), latency from when each request was due, {RATE:g} requests/s:")
    print(f"  baseline (direct):  p50 {ms(direct.p(0.5))}   p99 {ms(direct.p(0.99))}")
    print(f"  via the proxy:      p50 {ms(proxied.p(0.5))}   p99 {ms(proxied.p(0.99))}")
    print(f"  added:              p50 {ms(added_p50)}   p99 {ms(median.added_p99)}")
    print(
        f"  target: added p99 < {TARGET_ADDED_P99 * 1000:g} ms at {RATE:g} requests/s:"
        f" {'MET' if met else 'NOT MET'}"
    )
    print(
        f"  (send -> response, without the generator's timer lateness: direct p50 {ms(direct.p(0.5, False))}"
        f" p99 {ms(direct.p(0.99, False))}; proxied p50 {ms(proxied.p(0.5, False))}"
        f" p99 {ms(proxied.p(0.99, False))})"
    )
    print(f"  proxy CPU at {RATE:g} requests/s: {median.proxy_cpu_percent:.1f} % of one core")
    print(
        f"max throughput, closed loop, {CONNECTIONS} connections: direct {median.direct_rps:.0f} requests/s,"
        f" via the proxy {median.proxied_rps:.0f} requests/s ({median.proxied_rps / median.direct_rps:.2f}x)"
    )
    print(
        f"proxy counters over the run: {metrics['hal9_shadow_requests_total']:.0f} requests,"
        f" {metrics['hal9_shadow_compared_total']:.0f} compared,"
        f" parity {metrics['hal9_shadow_parity_ratio']:.4f},"
        f" {metrics['hal9_shadow_shed_total']:.0f} shed"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
