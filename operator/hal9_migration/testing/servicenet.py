"""Service names that resolve and connect for processes in pods: kube-proxy and cluster DNS in
miniature (test and demo code).

In a cluster, a process in a pod connects to ``http://<service>.<namespace>.svc.cluster.local:<port>``:
cluster DNS answers the Service's ClusterIP, and kube-proxy sends the connection on to one of the
Service's ready endpoints, at the target port. Neither runs here (and a ClusterIP such as 10.0.0.7 is
not an address of this machine), so the node agent plays both:

- **Virtual IPs** (``VipPool``): one per Service on loopback, from 127.240.0.0/12. Linux routes all of
  127/8 to ``lo``, so nothing is configured; the range is disjoint from the pod IPs (127.0.1.1 to
  127.0.254.254, ``nodeapi.IpPool``). Picked from a hash of the Service's uid: stable for the
  Service's life, and across a restart of the agent. Headless and ExternalName Services get none
  (cluster DNS would answer pod IPs or a CNAME; nothing here needs them).
- **A user-space service proxy** (``ServiceProxy``; kube-proxy's old ``userspace`` mode): for each TCP
  port of each Service, a listener on VIP:port that relays each accepted connection to one of the
  ready endpoints of the Service's EndpointSlices (``endpointslices.py`` writes them), at the slice port
  of the same name, i.e. the resolved targetPort. Round-robin, and the next endpoint when a connect
  fails (as the userspace proxy did: a pod that has just died costs no request). Endpoints are looked
  up per connection, so a rollout moves new connections at once; open ones stay where they are, as
  with kube-proxy. A Service without endpoints resets connections. One asyncio loop in a thread of
  its own does all of it (a few hundred requests/s over keep-alive connections cost little); two watch
  threads (Services, EndpointSlices) only post changes to it.
- **Names** (``render_hosts``): like the kubelet, the agent keeps a hosts file per pod (localhost, the
  pod's hostname -> its IP, ``hostAliases``), plus a line per Service: its VIP, then
  ``<svc>.<ns>.svc.cluster.local``, ``<svc>.<ns>.svc``, ``<svc>.<ns>`` and, for Services of the pod's
  own namespace, ``<svc>`` (the names the cluster's DNS search path makes work). Like a container
  runtime, ``podprocess`` binds that file over /etc/hosts in a mount namespace of the pod's own, so
  only the pod's processes see it: tests, Envoy and the machine are not affected. When Services come
  and go the file is rewritten in place (``write_in_place``: the same inode, which is what the bind
  mount shows), and glibc reads /etc/hosts afresh on every lookup, so new connections resolve anew.

Not covered: UDP and SCTP ports, NodePorts, session affinity, the ``<SVC>_SERVICE_HOST`` variables,
DNS (a resolver that skips /etc/hosts will not find the names). A Service port that another process
holds on all interfaces (Envoy Gateway's fixed ports, ``dataplane.FIXED_PORTS``) cannot be bound on
a VIP: a warning says so.

Everything above ``ServiceProxy`` is pure and unit-tested; the proxy itself is tested with real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import kubelet_env as kenv
from .endpointslices import SERVICE_NAME_LABEL
from .nodeapi import Api

CLUSTER_DOMAIN = "cluster.local"
CONNECT_TIMEOUT = 5.0  # seconds to reach one endpoint before trying the next
CHUNK = 64 * 1024  # bytes relayed per read

log = logging.getLogger("hal9.servicenet")

Target = tuple[str, int]  # (address, port) of one endpoint


@dataclass(frozen=True, order=True)
class ServiceName:
    """A Service that has a virtual IP: what a pod's hosts file lists."""

    namespace: str
    name: str
    vip: str


class VipPool:
    """Virtual IPs on 127.240.0.0/12 (127.240.0.1 to 127.255.255.254, no .0 or .255 last octet), one
    per Service uid. The first candidate is a hash of the uid, so a Service keeps its address when the
    agent restarts; a taken candidate moves on to the next free address."""

    PER_BLOCK = 256 * 254  # addresses per second octet
    SIZE = 16 * PER_BLOCK

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}  # address -> uid
        self.addresses: dict[str, str] = {}  # uid -> address

    @classmethod
    def address(cls, index: int) -> str:
        block, rest = divmod(index, cls.PER_BLOCK)
        return f"127.{240 + block}.{rest // 254}.{1 + rest % 254}"

    def allocate(self, uid: str) -> str:
        if uid in self.addresses:
            return self.addresses[uid]
        start = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") % self.SIZE
        for step in range(self.SIZE):
            candidate = self.address((start + step) % self.SIZE)
            if candidate not in self.owners:
                self.owners[candidate] = uid
                self.addresses[uid] = candidate
                return candidate
        raise RuntimeError("no free virtual IP left on 127.240.0.0/12")

    def release(self, uid: str) -> None:
        address = self.addresses.pop(uid, None)
        if address is not None:
            del self.owners[address]


def has_vip(service: Mapping[str, Any]) -> bool:
    """Whether the Service gets a virtual IP: not headless, not ExternalName."""
    spec = service.get("spec") or {}
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"


def tcp_ports(service: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(name, port) of the Service's TCP ports: one listener each on its VIP."""
    return [
        (str(p.get("name") or ""), int(p["port"]))
        for p in (service.get("spec") or {}).get("ports") or []
        if p.get("protocol", "TCP") == "TCP" and p.get("port")
    ]


def endpoint_targets(slices: Iterable[Mapping[str, Any]], port_name: str) -> list[Target]:
    """Where a connection to the Service port named ``port_name`` may go: the first address of each
    ready endpoint (ready unset counts as ready, as the API says) at the number of the slice's port of
    that name, as kube-proxy reads them. Slices in name order, endpoints in slice order, no duplicates."""
    targets: list[Target] = []
    for found in sorted(slices, key=lambda s: str(s.get("metadata", {}).get("name", ""))):
        numbers = [
            p.get("port")
            for p in found.get("ports") or []
            if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == "TCP"
        ]
        if not numbers or numbers[0] is None:
            continue
        for endpoint in found.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False or not endpoint.get("addresses"):
                continue
            target = (str(endpoint["addresses"][0]), int(numbers[0]))
            if target not in targets:
                targets.append(target)
    return targets


def service_hostnames(service: ServiceName, pod_namespace: str, domain: str = CLUSTER_DOMAIN) -> list[str]:
    """The names a pod resolves to the Service's VIP: what the cluster DNS search path
    (``<ns>.svc.<domain> svc.<domain> <domain>``) makes of the short forms."""
    names = [
        f"{service.name}.{service.namespace}.svc.{domain}",
        f"{service.name}.{service.namespace}.svc",
        f"{service.name}.{service.namespace}",
    ]
    if service.namespace == pod_namespace:
        names.append(service.name)
    return names


def render_hosts(
    pod: Mapping[str, Any],
    pod_ip: str,
    services: Iterable[ServiceName],
    machine_hostname: str = "",
    domain: str = CLUSTER_DOMAIN,
) -> str:
    """The pod's /etc/hosts: the kubelet's (localhost, the pod's hostname, ``hostAliases``), then a
    line per Service. ``machine_hostname``: what ``gethostname()`` returns in the pod's processes here
    (they share the machine's UTS namespace); it resolves to the pod IP, as a pod's own hostname does,
    and not through DNS."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = str(meta.get("namespace", ""))
    lines = [
        "# Kubernetes-managed hosts file (the hal9 node agent's: servicenet.py).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    if pod_ip:
        hostname = kenv.pod_hostname(pod)
        names = [hostname]
        if spec.get("subdomain"):
            names.insert(0, f"{hostname}.{spec['subdomain']}.{namespace}.svc.{domain}")
        if machine_hostname and machine_hostname not in names:
            names.append(machine_hostname)
        lines.append(f"{pod_ip}\t" + "\t".join(names))
    aliases = [a for a in spec.get("hostAliases") or [] if a.get("ip") and a.get("hostnames")]
    if aliases:
        lines += ["", "# Entries added by HostAliases."]
        lines += [f"{a['ip']}\t" + "\t".join(a["hostnames"]) for a in aliases]
    listed = sorted(services)
    if listed:
        lines += ["", "# Services: their virtual IPs on the node agent's service proxy."]
        lines += [f"{s.vip}\t" + "\t".join(service_hostnames(s, namespace, domain)) for s in listed]
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> bool:
    """Make ``path`` hold ``text``, keeping its inode: a bind mount of the file shows the inode it was
    made on, so a new file renamed into place would go unseen. False when it already held ``text``.
    (A reader may see the file half-written for a moment; glibc then misses a name once.)"""
    data = text.encode()
    with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+b") as file:
        if file.read() == data:
            return False
        file.seek(0)
        file.write(data)
        file.truncate()
    return True


@dataclass
class Listener:
    """One Service port on its VIP."""

    namespace: str
    service: str
    port_name: str
    address: Target
    server: asyncio.Server | None = None
    turn: int = 0  # round-robin position


class ServiceProxy:
    """Services' VIPs and listeners, kept from the Services and EndpointSlices it is told about.

    All state lives on the proxy's event loop thread. Other threads only ``post`` changes; a single
    consumer applies them in order, then brings the listeners in line and, when the set of Services
    with a VIP changed, calls ``on_names`` (from the loop thread) with all of them: the node agent
    rewrites its pods' hosts files then. Listeners are bound before the names are published, so a
    name never resolves to an address nothing listens on.
    """

    def __init__(self, on_names: Callable[[tuple[ServiceName, ...]], None]) -> None:
        self.on_names = on_names
        self.vips = VipPool()
        self.services: dict[str, dict[str, Any]] = {}  # uid -> Service
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) -> EndpointSlice
        # (namespace, service) -> its slices, indexed at every change: looked up on every connection.
        self.by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.listeners: dict[tuple[str, str, int], Listener] = {}  # (uid, port name, port) -> listener
        self.refused: set[tuple[str, str, int]] = set()  # listeners that could not bind (warned once)
        self.published: tuple[ServiceName, ...] | None = None
        self.loop = asyncio.new_event_loop()
        self._inbox: asyncio.Queue[Callable[[], None]] = asyncio.Queue()  # bound to the loop on first use
        self._tasks: set[asyncio.Task[Any]] = set()  # the consumer and the relayed connections
        self._thread: threading.Thread | None = None

    # --- lifecycle (any thread) -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="service-proxy", daemon=True)
        self._thread.start()

    def watch(self, kubeconfig: Path) -> None:
        """Follow the cluster's Services and EndpointSlices (two watch threads, their own clients)."""
        for method, on_list, on_event in (
            ("list_service_for_all_namespaces", self.services_listed, self.service_event),
            ("list_endpoint_slice_for_all_namespaces", self.slices_listed, self.slice_event),
        ):
            threading.Thread(
                target=Api(kubeconfig).list_and_watch,
                args=(on_list, on_event, method),
                name=f"proxy-{method}",
                daemon=True,
            ).start()

    def stop(self, timeout: float = 10) -> None:
        """Close the listeners and relayed connections, and end the loop thread."""
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self.loop.close()

    def settle(self, timeout: float = 10) -> None:
        """Return once every change posted before this call is applied (tests)."""
        done = threading.Event()
        self.post(done.set)
        if not done.wait(timeout):
            raise TimeoutError("the service proxy did not apply its changes in time")

    # --- inputs (any thread) ------------------------------------------------------------------------

    def post(self, change: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the proxy was stopped
            self.loop.call_soon_threadsafe(self._inbox.put_nowait, change)

    def services_listed(self, items: list[dict[str, Any]]) -> None:
        self.post(lambda: self._replace(self.services, {s["metadata"]["uid"]: s for s in items}))

    def service_event(self, kind: str, service: dict[str, Any]) -> None:
        self.post(lambda: self._change(self.services, service["metadata"]["uid"], kind, service))

    def slices_listed(self, items: list[dict[str, Any]]) -> None:
        self.post(lambda: self._replace(self.slices, {_key(s): s for s in items}))

    def slice_event(self, kind: str, found: dict[str, Any]) -> None:
        self.post(lambda: self._change(self.slices, _key(found), kind, found))

    @staticmethod
    def _replace(store: dict[Any, dict[str, Any]], items: dict[Any, dict[str, Any]]) -> None:
        store.clear()
        store.update(items)

    @staticmethod
    def _change(store: dict[Any, dict[str, Any]], key: Any, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj

    # --- the loop thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        consumer = self.loop.create_task(self._consume())
        self._tasks.add(consumer)  # cancelled with the connections on stop
        self.loop.run_forever()

    async def _consume(self) -> None:
        while True:
            change = await self._inbox.get()
            try:
                change()
                await self._sync()
            except Exception:
                log.exception("service proxy: applying a change failed")

    async def _sync(self) -> None:
        """Index the slices, bring the listeners in line with the Services, publish the names."""
        self.by_service = {}
        for found in self.slices.values():
            service = (found.get("metadata", {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
            if service:
                self.by_service.setdefault((_key(found)[0], service), []).append(found)
        wanted: dict[tuple[str, str, int], Listener] = {}
        names = []
        for uid, service in self.services.items():
            if not has_vip(service):
                continue
            meta = service["metadata"]
            vip = self.vips.allocate(uid)
            names.append(ServiceName(meta["namespace"], meta["name"], vip))
            for port_name, port in tcp_ports(service):
                wanted[(uid, port_name, port)] = Listener(
                    meta["namespace"], meta["name"], port_name, (vip, port)
                )
        for uid in [uid for uid in self.vips.addresses if uid not in self.services]:
            self.vips.release(uid)
        for key in [key for key in self.listeners if key not in wanted]:
            listener = self.listeners.pop(key)
            if listener.server is not None:
                listener.server.close()
            log.info("service %s/%s: closed %s:%d", listener.namespace, listener.service, *listener.address)
        self.refused &= set(wanted)
        for key, listener in wanted.items():
            if key not in self.listeners:
                await self._open(key, listener)
        published = tuple(sorted(names))
        if published != self.published:
            self.published = published
            self.on_names(published)

    async def _open(self, key: tuple[str, str, int], listener: Listener) -> None:
        host, port = listener.address
        try:
            listener.server = await asyncio.start_server(
                lambda reader, writer: self._relay(listener, reader, writer), host, port, reuse_address=True
            )
        except OSError as error:
            if key not in self.refused:  # tried again at every change, told once
                self.refused.add(key)
                log.warning(
                    "service %s/%s: cannot listen on %s:%d (%s); its port %r is unreachable by name",
                    listener.namespace,
                    listener.service,
                    host,
                    port,
                    error.strerror or error,
                    listener.port_name,
                )
            return
        self.refused.discard(key)
        self.listeners[key] = listener
        log.info(
            "service %s/%s: %s:%d -> endpoints' port %r",
            listener.namespace,
            listener.service,
            host,
            port,
            listener.port_name,
        )

    async def _close(self) -> None:
        for listener in self.listeners.values():
            if listener.server is not None:
                listener.server.close()
        self.listeners.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _relay(
        self, listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One accepted connection: to an endpoint, then bytes both ways until both sides are done."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream = await self._connect(listener)
            if upstream is None:
                _reset(writer)
                return
            upstream_reader, upstream_writer = upstream
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            writer.close()
            if upstream_writer is not None:
                upstream_writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _connect(self, listener: Listener) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the next endpoint in turn that accepts one; None when none does."""
        slices = self.by_service.get((listener.namespace, listener.service), [])
        targets = endpoint_targets(slices, listener.port_name)
        if not targets:
            log.debug("service %s/%s: no ready endpoints", listener.namespace, listener.service)
            return None
        first = listener.turn % len(targets)
        listener.turn += 1
        for host, port in targets[first:] + targets[:first]:
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as error:
                log.debug(
                    "service %s/%s: %s:%d refused (%s)",
                    listener.namespace,
                    listener.service,
                    host,
                    port,
                    error,
                )
        return None


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """One direction of a relayed connection. Its end (EOF) is passed on as a half-close, so the
    other direction goes on; an error aborts the sink, which ends the other direction too."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()
    except OSError:  # reset, broken pipe: on either side
        sink.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0): a client fails at once, as kube-proxy's reject does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))
