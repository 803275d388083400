"""A node agent for the local control plane: pods really run, as local processes (test and demo code).

The local control plane has no scheduler and no kubelet, so a Job's pods would stay Pending forever and
nothing about running them (secrets reaching the worker, retries per index, exit codes, the log tail
in ``terminated.message``, garbage collection) could be tested; nor could pods reach Services. This
agent plays those parts for one Node, ``hal9-local``, the way they do it, so that Kubernetes' own Job
controller and garbage collector do the rest:

- as a scheduler: it binds pending pods of the default scheduler through the ``binding``
  subresource;
- as a kubelet: it runs each container's ``command`` + ``args`` as a local process in its own session,
  with the environment resolved as the kubelet resolves it (``kubelet_env``), a pod IP of its own on
  loopback, and writes pod status back as the kubelet writes it (``kubelet_status``). On deletion it
  stops the processes (SIGTERM, then SIGKILL) and deletes the pod with grace period 0;
- as the EndpointSlice controller: it keeps an FQDN EndpointSlice for every Service with a
  ``spec.selector``, and for selector-less ones annotated ``hal9.ai/endpoints-selector``
  (``endpointslices.py``): the API server refuses loopback pod IPs in the IPv4 slices Kubernetes' own
  controller would write, so that controller does not run;
- as kube-proxy and cluster DNS (``servicenet.py``): every Service gets a virtual IP on loopback
  (127.240.0.0/12) where a user-space proxy relays connections to its ready endpoints, and every pod
  gets a hosts file, bound over /etc/hosts in a mount namespace of its own, mapping
  ``<svc>.<ns>.svc.cluster.local`` (and the shorter forms) to those IPs. So a process in a pod
  reaches ``http://<service>.<namespace>.svc.cluster.local:<service port>`` as in a cluster. Without
  root (no mount namespaces) a warning says so once and pods see the machine's /etc/hosts;
- as the kubelet's ServiceAccount volume: a pod that names its ``serviceAccountName`` (the
  ServiceAccount admission plugin, which would name ``default``, is off here) gets, unless it (or else
  its ServiceAccount) says ``automountServiceAccountToken: false``, a token from the TokenRequest API,
  bound to the pod and renewed at 80 % of its life, with ``ca.crt`` and ``namespace``, bound read-only
  at /var/run/secrets/kubernetes.io/serviceaccount (in the hosts file's mount namespace); and every
  pod gets ``KUBERNETES_SERVICE_HOST``/``PORT`` naming the API server. So an in-cluster client (kopf,
  the ``kubernetes`` client) logs in as the pod's ServiceAccount, not as the admin.

No image is pulled: the command runs from the project's environment (the venv's ``bin`` first on
PATH), so ``hal9-migration migrate-state`` is the code under test. Not supported (and not needed
here): init containers, probes (a pod is Ready once its processes run), volumes other than the
ServiceAccount's, resource limits, securityContext users. Logs, pid files and hosts files:
``<workdir>/pods/<namespace>/<pod>/{<container>.log,<container>.pid,hosts}``.

Started by ``ControlPlane.start()`` as ``python -m hal9_migration.testing.nodeagent``.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import math
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from . import kubelet_env as kenv
from . import kubelet_status as kst
from . import podprocess
from .endpointslices import EndpointSliceController
from .nodeapi import HOST_IP, NODE_NAME, Api, IpPool, node_object
from .servicenet import ServiceName, ServiceProxy, render_hosts, write_in_place

log = logging.getLogger("hal9.nodeagent")

KILL_GRACE_MAX = 5.0  # seconds between SIGTERM and SIGKILL at most, whatever the pod's grace period
CONFIG_RETRY = 1.0  # a missing Secret or ConfigMap is looked up again this often
STOP_GRACE = 2.0  # when the agent stops, its processes get this long after SIGTERM
TOKEN_SECONDS = 3607  # a ServiceAccount token's requested life, as the kubelet's kube-api-access volume
TOKEN_RENEW = 0.8  # the kubelet renews a token once this share of its life has passed


@dataclass(frozen=True)
class PodEvent:
    kind: str  # ADDED, MODIFIED, DELETED
    pod: dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """A full list: pods the agent knows and the list lacks were deleted while it was not watching."""

    pods: list[dict[str, Any]]


@dataclass(frozen=True)
class Exited:
    uid: str
    container: str
    proc: subprocess.Popen[bytes]


@dataclass(frozen=True)
class ServiceNames:
    """The Services with a virtual IP changed: every pod's hosts file is rewritten."""

    names: tuple[ServiceName, ...]


class Stop:
    """SIGTERM or SIGINT: stop the processes, then the agent."""


Event = PodEvent | Snapshot | Exited | ServiceNames | Stop


@dataclass
class Container:
    spec: dict[str, Any]
    state: dict[str, Any] = field(default_factory=lambda: kst.waiting("ContainerCreating"))
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    ever_ran: bool = False
    proc: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    log_offset: int = 0
    run_at: float = 0.0  # monotonic time when it may (re)start; inf: never again
    container_id: str = ""

    @property
    def name(self) -> str:
        return str(self.spec["name"])


@dataclass
class Pod:
    raw: dict[str, Any]  # the latest version seen
    uid: str
    namespace: str
    name: str
    directory: Path
    ip: str
    start_time: str
    containers: list[Container]
    phase: str = "Pending"
    unsupported: str = ""  # why this pod can never start here
    kill_at: float | None = None  # monotonic SIGKILL deadline once terminating
    deleted: bool = False  # the grace-0 delete was sent
    wake_at: float | None = None
    written: dict[str, Any] | None = None

    def alive(self) -> list[Container]:
        return [c for c in self.containers if c.proc is not None]


class NodeAgent:
    """All decisions and API writes happen on the main thread, driven by a queue: the pod watch and
    one waiter thread per process only post events, so there is no shared state to lock, and an idle
    agent sleeps in ``queue.get``. Processes are started from the main thread because
    PR_SET_PDEATHSIG fires when the *thread* that forked them ends."""

    def __init__(self, kubeconfig: Path, workdir: Path, bin_dir: Path, node_name: str = NODE_NAME) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.node_name = node_name
        self.path = f"{bin_dir}:{kenv.SYSTEM_PATH}"
        self.api = Api(kubeconfig)
        # What a pod's in-cluster client needs: the API server's address and the CA that signed it.
        server = urllib.parse.urlsplit(self.api.client.configuration.host)
        self.api_env = kenv.api_server_env(server.hostname or HOST_IP, server.port or 443)
        self.ca = Path(self.api.client.configuration.ssl_ca_cert).read_text()
        self.node = node_object(node_name)
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()  # put() is safe in signal handlers
        self.pods: dict[str, Pod] = {}
        self.bound: set[str] = set()
        self.ips = IpPool()
        self.service_names: tuple[ServiceName, ...] = ()
        self.private_hosts = False  # whether pods get their hosts file as /etc/hosts (probed in run)
        self.machine_hostname = socket.gethostname()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()

    # --- main loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        ready = self.workdir / "ready"
        ready.unlink(missing_ok=True)
        # Probed before any thread starts (it forks).
        problem = podprocess.private_hosts_error()
        self.private_hosts = problem is None
        if problem is not None:
            log.warning(
                "pods cannot get a private /etc/hosts here (%s: a mount namespace needs root); they see "
                "the machine's, so Service names do not resolve in them",
                problem,
            )
        else:
            # The mount point, as a runtime makes it in a container's root filesystem: on this
            # machine, an empty /var/run/secrets/kubernetes.io/serviceaccount is left behind (each
            # pod's own token directory is bound over it inside the pod's mount namespace only).
            podprocess.SERVICE_ACCOUNT_MOUNT.mkdir(parents=True, exist_ok=True)
        self.api.register_node(self.node)
        # Plays the EndpointSlice controller for the Services of loopback pods (threads of its own; it
        # shares nothing with the agent but the pods it reads through the API).
        EndpointSliceController(self.kubeconfig).start()
        # Plays kube-proxy (a loop thread and two watches of its own); it only posts the Services' names.
        proxy = ServiceProxy(lambda names: self.events.put(ServiceNames(names)))
        proxy.start()
        proxy.watch(self.kubeconfig)
        # The watch gets its own thread and connection; it only posts events.
        threading.Thread(
            target=Api(self.kubeconfig).list_and_watch,
            args=(
                lambda pods: self.events.put(Snapshot(pods)),
                lambda kind, pod: self.events.put(PodEvent(kind, pod)),
            ),
            name="pod-watch",
            daemon=True,
        ).start()
        try:
            while True:
                timeout = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else None
                try:
                    event: Event | None = self.events.get(timeout=timeout)
                except queue.Empty:
                    event = None
                if isinstance(event, Stop):
                    return
                self._guarded(self._handle, event)
                while self.timers and self.timers[0][0] <= time.monotonic():
                    self._guarded(heapq.heappop(self.timers)[2])
                if isinstance(event, Snapshot) and not ready.exists():
                    ready.write_text(f"{os.getpid()}\n")
                    log.info("node %s ready; watching pods", self.node_name)
        finally:
            # The agent stops: its processes stop with it.
            procs = [c.proc for pod in self.pods.values() for c in pod.alive() if c.proc is not None]
            podprocess.stop_all(procs, STOP_GRACE)

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        """One failed API call must not stop the node: log it; the next event or relist retries."""
        try:
            action(*args)
        except Exception:
            log.exception("node agent step failed")

    def _handle(self, event: Event | None) -> None:
        if isinstance(event, PodEvent):
            self._on_pod(event.kind, event.pod)
        elif isinstance(event, Snapshot):
            listed = {p["metadata"]["uid"] for p in event.pods}
            for uid in [uid for uid in self.pods if uid not in listed]:
                self._forget(uid)
            self.bound &= listed
            for raw in event.pods:
                self._on_pod("ADDED", raw)
        elif isinstance(event, Exited):
            self._on_exit(event)
        elif isinstance(event, ServiceNames):
            self.service_names = event.names
            for pod in self.pods.values():
                self._guarded(self._write_hosts, pod)

    def _after(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self._sequence), action))

    def _wake(self, pod: Pod, when: float) -> None:
        """Sync ``pod`` again at monotonic time ``when`` (one pending timer per pod, the earliest)."""
        now = time.monotonic()
        if pod.wake_at is not None and now < pod.wake_at <= when:
            return
        pod.wake_at = when

        def fire() -> None:
            if pod.wake_at == when:
                pod.wake_at = None
                self._sync(pod)

        self._after(max(0.0, when - now), fire)

    # --- as a scheduler ------------------------------------------------------------------------------

    def _on_pod(self, kind: str, raw: dict[str, Any]) -> None:
        uid = str(raw["metadata"]["uid"])
        node = raw.get("spec", {}).get("nodeName")
        if kind == "DELETED":
            self.bound.discard(uid)
            self._forget(uid)
        elif not node:
            self._bind(raw)
        elif node == self.node_name:
            self.bound.discard(uid)
            pod = self.pods.get(uid)
            if pod is None:
                pod = self._admit(raw)
            else:
                pod.raw = raw
            self._sync(pod)

    def _bind(self, raw: dict[str, Any]) -> None:
        meta, spec = raw["metadata"], raw.get("spec", {})
        if (
            meta["uid"] in self.bound
            or meta.get("deletionTimestamp")
            or raw.get("status", {}).get("phase") in kst.TERMINAL
            or spec.get("schedulerName", "default-scheduler") != "default-scheduler"
            or spec.get("schedulingGates")
        ):
            return
        labels = self.node["metadata"]["labels"]
        if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
            log.info("pod %s/%s: its nodeSelector excludes this node", meta["namespace"], meta["name"])
            return
        try:
            self.api.bind(meta["namespace"], meta["name"], meta["uid"], self.node_name)
        except ApiException as error:
            if error.status not in (404, 409):  # gone, or bound meanwhile
                self._after(CONFIG_RETRY, lambda: self._bind(raw))
                raise
            return
        self.bound.add(meta["uid"])
        log.info("bound pod %s/%s to %s", meta["namespace"], meta["name"], self.node_name)

    # --- as a kubelet ----------------------------------------------------------------------------------

    def _admit(self, raw: dict[str, Any]) -> Pod:
        """Take a pod bound here. A pod seen again after an agent restart keeps its IP and counts;
        a container recorded as running has lost its process and is reported as such."""
        meta, spec, status = raw["metadata"], raw.get("spec", {}), raw.get("status", {})
        directory = self.workdir / "pods" / meta["namespace"] / meta["name"]
        uid_file = directory / "uid"
        if uid_file.exists() and uid_file.read_text() != meta["uid"]:
            shutil.rmtree(directory)  # an earlier pod of the same name: fresh logs and home
        (directory / "home").mkdir(parents=True, exist_ok=True)
        uid_file.write_text(meta["uid"])
        phase = status.get("phase", "Pending")
        if phase in kst.TERMINAL:
            ip = status.get("podIP", "")
        elif spec.get("hostNetwork"):
            ip = HOST_IP
        else:
            ip = self.ips.allocate(meta["uid"], status.get("podIP"))
        start_time = status.get("startTime") or kst.rfc3339()
        pod = Pod(
            raw, meta["uid"], meta["namespace"], meta["name"], directory, ip, start_time, [], phase=phase
        )
        if spec.get("initContainers"):
            pod.unsupported = "init containers are not supported by the node agent"
        previous = {s["name"]: s for s in status.get("containerStatuses") or []}
        for container_spec in spec.get("containers", []):
            container = Container(container_spec)
            pod.containers.append(container)
            old = previous.get(container.name)
            if old is None:
                continue
            container.restart_count = int(old.get("restartCount", 0))
            container.last_state = old.get("lastState") or {}
            state = old.get("state") or {}
            container.ever_ran = "running" in state or "terminated" in state
            if "terminated" in state or phase in kst.TERMINAL:
                container.state, container.run_at = state, math.inf
            elif "running" in state:
                message = "the node agent restarted; the container's process is gone"
                self._finish(pod, container, 137, reason="ContainerStatusUnknown", message=message)
        log.info("admitted pod %s/%s (ip %s)", pod.namespace, pod.name, ip or "-")
        self.pods[pod.uid] = pod
        self._write_hosts(pod)
        return pod

    def _write_hosts(self, pod: Pod) -> None:
        """The pod's hosts file, as the kubelet keeps one (``servicenet.render_hosts``); rewritten in
        place, so processes that have it bound over /etc/hosts see the change."""
        if pod.phase in kst.TERMINAL or not pod.ip:
            return
        text = render_hosts(pod.raw, pod.ip, self.service_names, self.machine_hostname)
        write_in_place(pod.directory / "hosts", text)

    def _sync(self, pod: Pod) -> None:
        """Bring the pod's processes to what its spec and deletion state ask for, then write status.

        Idempotent, so a failed API call is simply retried a second later (as the kubelet resyncs):
        a pod whose exit was not yet written may see no other event to bring it back.
        """
        if self.pods.get(pod.uid) is not pod:
            return
        try:
            self._sync_once(pod)
        except Exception:
            log.exception("pod %s/%s: sync failed; retrying", pod.namespace, pod.name)
            self._wake(pod, time.monotonic() + CONFIG_RETRY)

    def _sync_once(self, pod: Pod) -> None:
        if pod.raw["metadata"].get("deletionTimestamp"):
            self._terminate(pod)
            return
        if pod.phase in kst.TERMINAL:
            return
        now = time.monotonic()
        for container in pod.containers:
            if pod.unsupported:
                container.state = kst.waiting("CreateContainerConfigError", pod.unsupported)
            elif container.proc is None and container.run_at <= now:
                self._start(pod, container)
            if container.proc is None and now < container.run_at < math.inf:
                self._wake(pod, container.run_at)
        self._write_status(pod)

    def _start(self, pod: Pod, container: Container) -> None:
        ns = pod.namespace
        try:
            variables = kenv.resolve_env(
                pod.raw,
                container.spec,
                secret=lambda name: self.api.secret_data(ns, name),
                config_map=lambda name: self.api.config_map_data(ns, name),
                pod_ip=pod.ip,
                host_ip=HOST_IP,
                services=self.api_env,
            )
            account = self._service_account(pod)
        except kenv.ConfigError as error:
            # Pending, retried: creating the missing Secret or ConfigMap is enough to start it.
            container.state = kst.waiting("CreateContainerConfigError", str(error))
            container.run_at = time.monotonic() + CONFIG_RETRY
            return
        if container.ever_ran:
            container.restart_count += 1
        container.ever_ran = True
        container.started_at = kst.rfc3339()
        container.container_id = f"hal9-local://{pod.uid}/{container.name}/{container.restart_count}"
        try:
            argv = kenv.command_line(container.spec, variables)
        except kenv.StartError as error:
            self._finish(pod, container, 128, reason="StartError", message=str(error))
            return
        home = pod.directory / "home"
        env = kenv.process_env(variables, path=self.path, home=str(home), hostname=kenv.pod_hostname(pod.raw))
        log_path = pod.directory / f"{container.name}.log"
        cwd = container.spec.get("workingDir") or home
        hosts = pod.directory / "hosts" if self.private_hosts else None
        try:
            self._write_hosts(pod)
            proc, container.log_offset = podprocess.spawn(
                argv, env=env, cwd=cwd, log_path=log_path, hosts_file=hosts, service_account=account
            )
        except OSError as error:  # not found, not executable, bad workingDir, no mount namespace
            message = f'exec: "{argv[0]}": {error.strerror or error}'
            self._finish(pod, container, 128, reason="StartError", message=message)
            return
        (pod.directory / f"{container.name}.pid").write_text(f"{proc.pid}\n")
        container.proc = proc
        container.state = kst.running(container.started_at)
        event = Exited(pod.uid, container.name, proc)
        threading.Thread(target=self._reap, args=(event,), name=f"wait-{proc.pid}", daemon=True).start()
        log.info("pod %s/%s: started %s (pid %d): %s", ns, pod.name, container.name, proc.pid, argv)

    def _service_account(self, pod: Pod) -> Path | None:
        """The pod's ServiceAccount directory (token, ca.crt, namespace) to bind where the kubelet
        mounts it; None when the pod opts out or processes get no mount namespace here. Raises
        ConfigError while the ServiceAccount does not exist (the pod waits, as admission would refuse
        it): creating it is enough."""
        if not self.private_hosts:
            return None
        directory = pod.directory / "serviceaccount"
        if (directory / "token").exists():  # a restarted container keeps its pod's token
            return directory
        spec = pod.raw.get("spec", {})
        # This control plane runs without the ServiceAccount admission plugin, which would set
        # "default": a pod that names no ServiceAccount has none, and no token can be bound to it.
        name = spec.get("serviceAccountName")
        if not name:
            return None
        try:
            account = self.api.call("read_namespaced_service_account", name, pod.namespace)
        except ApiException as error:
            if error.status == 404:
                problem = f'serviceaccount "{name}" not found'
                raise kenv.ConfigError(
                    f"error looking up service account {pod.namespace}/{name}: {problem}"
                ) from error
            raise
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = account.get("automountServiceAccountToken")
        if automount is False:
            return None
        self._write_token(pod, name)
        return directory

    def _write_token(self, pod: Pod, account: str) -> None:
        """A token from the TokenRequest API, bound to the pod (it stops working when the pod is
        deleted), written with the CA and namespace by atomic renames: a process reading through the
        bind mount sees the old token or the new one. Renewed at ``TOKEN_RENEW`` of its life."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_SECONDS,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid},
            },
        }
        answer = self.api.call("create_namespaced_service_account_token", account, pod.namespace, body)
        directory = pod.directory / "serviceaccount"
        directory.mkdir(exist_ok=True)
        for file, text in (
            ("ca.crt", self.ca),
            ("namespace", pod.namespace),
            ("token", answer["status"]["token"]),
        ):
            staged = directory / f".{file}.new"
            staged.unlink(missing_ok=True)
            # Created owner-only: the token is never readable by others, not even for a moment.
            with os.fdopen(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                out.write(text)
            staged.replace(directory / file)

        def renew() -> None:
            if self.pods.get(pod.uid) is not pod or pod.phase in kst.TERMINAL:
                return
            try:
                self._write_token(pod, account)
            except Exception:
                log.exception(
                    "pod %s/%s: renewing its ServiceAccount token failed; retrying", pod.namespace, pod.name
                )
                self._after(CONFIG_RETRY, renew)

        self._after(TOKEN_SECONDS * TOKEN_RENEW, renew)

    def _reap(self, event: Exited) -> None:
        """In a waiter thread: wait for the process, then tell the main thread."""
        event.proc.wait()
        self.events.put(event)

    def _on_exit(self, event: Exited) -> None:
        # What the process left in its session goes with it, as a container's cgroup does.
        podprocess.signal_group(event.proc, signal.SIGKILL)
        pod = self.pods.get(event.uid)
        found = [c for c in pod.containers if c.proc is event.proc] if pod else []
        if pod is None or not found:
            return
        found[0].proc = None
        code = kst.exit_code(event.proc.returncode)
        log.info("pod %s/%s: %s exited with %d", pod.namespace, pod.name, found[0].name, code)
        self._finish(pod, found[0], code)
        self._sync(pod)

    def _finish(
        self, pod: Pod, container: Container, code: int, *, reason: str = "", message: str = ""
    ) -> None:
        """Record a container's end, and whether and when restartPolicy starts it again."""
        policy = pod.raw.get("spec", {}).get("restartPolicy", "Always")
        fallback = container.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not message and code != 0 and fallback:
            output = podprocess.read_since(pod.directory / f"{container.name}.log", container.log_offset)
            message = kst.log_tail(output)
        ended = kst.terminated(
            code,
            started_at=container.started_at,
            finished_at=kst.rfc3339(),
            message=message,
            reason=reason,
            container_id=container.container_id,
        )
        if kst.restarts(policy, code) and not pod.raw["metadata"].get("deletionTimestamp"):
            delay = kst.backoff_seconds(container.restart_count)
            container.last_state = ended
            container.state = kst.waiting(
                "CrashLoopBackOff",
                f"back-off {delay:g}s restarting failed container={container.name} "
                f"pod={pod.name}_{pod.namespace}({pod.uid})",
            )
            container.run_at = time.monotonic() + delay
        else:
            container.state, container.run_at = ended, math.inf

    def _terminate(self, pod: Pod) -> None:
        """A deleted pod: SIGTERM, SIGKILL after min(grace, KILL_GRACE_MAX), final status, delete."""
        alive = pod.alive()
        if alive:
            now = time.monotonic()
            if pod.kill_at is None:
                meta = pod.raw["metadata"]
                grace = meta.get("deletionGracePeriodSeconds")
                if grace is None:
                    grace = pod.raw.get("spec", {}).get("terminationGracePeriodSeconds", 30)
                pod.kill_at = now + min(float(grace), KILL_GRACE_MAX)
                for container in alive:
                    podprocess.signal_group(container.proc, signal.SIGTERM)
                self._wake(pod, pod.kill_at)
            elif now >= pod.kill_at:
                for container in alive:
                    podprocess.signal_group(container.proc, signal.SIGKILL)
            return  # each exit syncs again
        if pod.deleted:
            return
        if pod.phase not in kst.TERMINAL:
            # Terminal now: a container waiting to restart reports its last run; one never run, the
            # kubelet's ContainerStatusUnknown.
            unknown = "The container could not be located when the pod was terminated"
            for c in pod.containers:
                if "terminated" not in c.state:
                    c.state = c.last_state or kst.terminated(
                        137,
                        started_at="",
                        finished_at=kst.rfc3339(),
                        reason="ContainerStatusUnknown",
                        message=unknown,
                    )
            self._write_status(pod, policy="Never")
        self.api.delete_pod(pod.namespace, pod.name, pod.uid)
        pod.deleted = True
        log.info("pod %s/%s: stopped and deleted", pod.namespace, pod.name)

    def _write_status(self, pod: Pod, policy: str = "") -> None:
        statuses = [
            kst.container_status(
                c.spec,
                state=c.state,
                last_state=c.last_state,
                restart_count=c.restart_count,
                container_id=c.container_id,
            )
            for c in pod.containers
        ]
        phase = kst.pod_phase(policy or pod.raw.get("spec", {}).get("restartPolicy", "Always"), statuses)
        fields: dict[str, Any] = {
            "phase": phase,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": pod.start_time,
            "containerStatuses": statuses,
        }
        if pod.ip:
            fields.update(podIP=pod.ip, podIPs=[{"ip": pod.ip}])
        if fields == pod.written:
            return
        if not self.api.update_pod_status(pod.namespace, pod.name, pod.uid, fields, kst.pod_conditions):
            return  # the pod is gone
        pod.written = fields
        if phase in kst.TERMINAL:
            pod.phase = phase
            self.ips.release(pod.ip, pod.uid)  # the sandbox is gone; the status keeps showing the address
            log.info("pod %s/%s: %s", pod.namespace, pod.name, phase)

    def _forget(self, uid: str) -> None:
        """The pod object is gone (deleted, or force-deleted without waiting for us)."""
        pod = self.pods.pop(uid, None)
        if pod is None:
            return
        for container in pod.alive():
            podprocess.signal_group(container.proc, signal.SIGKILL)
        self.ips.release(pod.ip, pod.uid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hal9_migration.testing.nodeagent", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True, help="pod logs, pid files and homes")
    parser.add_argument("--node-name", default=NODE_NAME)
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=Path(sys.executable).parent,  # the venv's bin: `hal9-migration` resolves from there
        help="put first on the PATH of every pod (default: this Python's directory)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    agent = NodeAgent(args.kubeconfig, args.workdir.resolve(), args.bin_dir, args.node_name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.events.put(Stop()))
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
