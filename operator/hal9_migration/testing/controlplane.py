"""A real local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager on loopback.

No Docker, no fake: the binaries are the upstream ones built from their Go modules by
``hack/build-controlplane.sh`` into a cache outside the repository. Used by the test suite (as a
session fixture) and by the demo (``hal9-migration local-cluster up``). A node agent
(``nodeagent.py``) completes it: it registers Node ``hal9-local``, binds pods to it and runs them as
local processes, so Jobs really run.

Where the binaries come from, in order:
  1. ``$KUBEBUILDER_ASSETS``: a user's own envtest binaries (etcd, kube-apiserver, kubectl; no
     controller manager there, so Jobs will not run);
  2. the project's cache, built on first use by ``hack/build-controlplane.sh``.
``HAL9_USE_EXISTING_CLUSTER=true`` skips all of this and uses the current ``$KUBECONFIG`` (kind, k3d,
a real cluster).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import builds

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-controlplane.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
# Controllers the project relies on: Jobs for state migration, garbage collection of owned objects,
# namespace deletion in tests, ServiceAccount tokens for the operator's own RBAC tests, Deployments and
# their ReplicaSets for the HAL9 stand-ins (a `kubectl set env` rollout really replaces the pod). Not the
# EndpointSlice controller: the node agent writes FQDN slices itself (loopback IPv4 ones are refused).
CONTROLLERS = (
    "job-controller",
    "deployment-controller",
    "replicaset-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)


class ControlPlaneError(RuntimeError):
    pass


def use_existing_cluster() -> bool:
    return os.environ.get("HAL9_USE_EXISTING_CLUSTER", "").lower() in ("1", "true", "yes")


def binaries_dir() -> Path:
    """The directory holding the binaries, building them into the cache on first use."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return Path(assets)
    if not BUILD_SCRIPT.exists():
        raise ControlPlaneError(f"{BUILD_SCRIPT} is missing; set KUBEBUILDER_ASSETS to your envtest binaries")
    return builds.built(BUILD_SCRIPT.name, "the control plane", ControlPlaneError)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlane:
    """A running control plane; ``kubeconfig`` is what clients use."""

    workdir: Path
    bindir: Path
    kubeconfig: Path = field(init=False)
    api_url: str = ""
    # Static users: "admin" is in system:masters; "restricted" has no rights until a test binds some.
    tokens: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # The node agent (nodeagent.py): binds pods to Node "hal9-local" and runs them as local processes.
    node_agent: bool = True
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kubeconfig = self.workdir / "kubeconfig"

    @property
    def node_agent_dir(self) -> Path:
        """The node agent's work directory: ``pods/<namespace>/<pod>/<container>.{log,pid}``."""
        return self.workdir / "node-agent"

    @property
    def kubectl(self) -> str:
        return str(self.bindir / "kubectl")

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 120, attempts: int = 3) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        missing = [b for b in BINARIES[:2] if not (self.bindir / b).exists()]
        if missing:
            raise ControlPlaneError(f"{', '.join(missing)} not found in {self.bindir}")
        for attempt in range(1, attempts + 1):
            try:
                self._start_etcd()
                self._start_apiserver()
                self._wait_ready(timeout)
                self.write_kubeconfig("admin", self.kubeconfig)
                if (self.bindir / "kube-controller-manager").exists():
                    self._start_controller_manager()
                if self.node_agent:
                    self._start_node_agent(timeout)
                return
            except ControlPlaneError as error:
                self.stop()
                # free_port() can only promise a port was free a moment ago; on a shared machine
                # another process may take it first. Start again on new ports.
                if "address already in use" not in str(error) or attempt == attempts:
                    raise
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop in reverse order of start: controllers, API server, then etcd."""
        for name in reversed(list(self.processes)):
            proc = self.processes.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def env(self) -> dict[str, str]:
        """The environment a client process needs to reach this control plane."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bindir}:{os.environ['PATH']}",
        }

    # --- pieces ----------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], program: list[str] | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            [*(program or [str(self.bindir / name)]), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        data = self.workdir / "etcd"
        self._spawn(
            "etcd",
            [
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        port = free_port()
        self.api_url = f"https://127.0.0.1:{port}"
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        sa_key = certs / "sa.key"
        if not sa_key.exists():
            subprocess.run(
                ["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True
            )
        self.tokens = {"admin": secrets.token_hex(24), "restricted": secrets.token_hex(24)}
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(
            f'{self.tokens["admin"]},admin,admin,"system:masters"\n'
            f"{self.tokens['restricted']},restricted,restricted\n"
        )
        tokens.chmod(0o600)
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={self.etcd_url}",
                f"--cert-dir={certs}",
                f"--secure-port={port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--authorization-mode=RBAC",
                f"--token-auth-file={tokens}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--endpoint-reconciler-type=none",
                "--v=0",
            ],
        )

    def _start_controller_manager(self) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={self.workdir / 'certs' / 'sa.key'}",
                f"--root-ca-file={self.workdir / 'certs' / 'apiserver.crt'}",
                "--secure-port=0",
                "--use-service-account-credentials=false",
                "--concurrent-job-syncs=5",
            ],
        )

    def _start_node_agent(self, timeout: float) -> None:
        """Started last, so stopped first: it stops its pods' processes before the API goes away.
        Ready once its Node is registered and its first pod list is in (it writes ``ready``)."""
        ready = self.node_agent_dir / "ready"
        ready.unlink(missing_ok=True)
        module = [sys.executable, "-m", "hal9_migration.testing.nodeagent"]
        self._spawn(
            "node-agent",
            ["--kubeconfig", str(self.kubeconfig), "--workdir", str(self.node_agent_dir)],
            program=module,
        )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            proc = self.processes["node-agent"]
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.workdir / "node-agent.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"the node agent did not start (exit {proc.returncode}):\n{tail}")
            time.sleep(0.1)

    def write_kubeconfig(self, user: str, path: Path) -> Path:
        """A kubeconfig that authenticates as one of the static ``tokens`` users."""
        # The API server signed its serving certificate with a CA of its own at start and wrote both
        # to apiserver.crt; trusting that file gives clients full TLS verification.
        ca = (self.workdir / "certs" / "apiserver.crt").read_bytes()
        cluster = {"server": self.api_url, "certificate-authority-data": base64.b64encode(ca).decode()}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "hal9-local", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": self.tokens[user]}}],
            "contexts": [{"name": "hal9-local", "context": {"cluster": "hal9-local", "user": user}}],
            "current-context": "hal9-local",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _wait_ready(self, timeout: float) -> None:
        # Readiness only: the certificate may not be on disk yet, and the token is our own.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        # S310: the URL is always our own https://127.0.0.1 API server.
        request = urllib.request.Request(  # noqa: S310
            f"{self.api_url}/readyz", headers={"Authorization": f"Bearer {self.tokens['admin']}"}
        )
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last = str(error)
            time.sleep(0.25)
        raise ControlPlaneError(f"kube-apiserver not ready after {timeout:.0f}s: {last}")


@contextlib.contextmanager
def running(workdir: Path | None = None) -> Iterator[ControlPlane]:
    """Start a control plane for the duration of the ``with`` block."""
    owned = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="hal9-cp-")) if workdir is None else workdir
    plane = ControlPlane(workdir=directory, bindir=binaries_dir())
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)


def serve(workdir: Path) -> int:
    """Start a control plane in ``workdir`` and keep it running until SIGTERM or SIGINT."""

    def _exit(*_: object) -> None:
        raise SystemExit(0)

    # Installed before starting, so a signal during the start still stops what has started.
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    plane = ControlPlane(workdir=workdir.resolve(), bindir=binaries_dir())
    try:
        plane.start()
        print(f"control plane ready: KUBECONFIG={plane.kubeconfig}", flush=True)
        while True:
            time.sleep(3600)
    finally:
        plane.stop()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the parent dies, so a killed test run
    or demo leaves no etcd or kube-apiserver behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
