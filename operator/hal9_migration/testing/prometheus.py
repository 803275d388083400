"""A real Prometheus (Debian's ``prometheus`` 2.42) for tests and the demo, scraping the stand-in pods.

The operator's analysis reads error rates and p99s from Prometheus; a test of it is only worth
something against the real server and real PromQL. This starts ``/usr/bin/prometheus`` on a free
loopback port with a generated config (scrape and evaluation every second, storage in the given work
directory, ``--web.enable-lifecycle`` for config reloads), and can stop and start it again on the
*same* port and data directory: a test can take Prometheus away mid-migration and bring it back with
its old samples.

Discovery: a ``file_sd_configs`` file the harness writes. Debian's build leaves Kubernetes service
discovery out (its client-go is not packaged): a ``kubernetes_sd_configs`` section is refused with
"field kubernetes_sd_configs not found in type config.ScrapeConfig". So a thread here plays Kubernetes
SD's pod role: it lists the pods every half second and writes, per pod with an IP, a target group with
the same ``__meta_kubernetes_pod_*`` labels Kubernetes SD would give (``file_sd_groups``). The
relabelling is then the one a real installation uses, applied by Prometheus itself: only pods
annotated ``prometheus.io/scrape: "true"`` and Running are scraped, at ``<pod IP>:<prometheus.io/port>``
and ``prometheus.io/path`` (default ``/metrics``); series carry ``namespace``, ``pod`` and ``app`` (the
pod's ``app`` label). Pods a rollout creates are found, and deleted ones dropped, within about a
second (Prometheus watches the file). The node agent's loopback pod IPs are directly reachable here.
One difference: Kubernetes SD makes a target per declared container port; this makes one per pod
(the scrape port comes from the annotation anyway).

The process is tied to the thread that starts it (PR_SET_PDEATHSIG, via ``podprocess.spawn``): start it
from the test's main thread (a fixture), so a killed test run leaves no Prometheus behind.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from . import podprocess
from .controlplane import free_port
from .nodeapi import Api

BINARY = "prometheus"
JOB = "hal9-pods"
DISCOVERY_INTERVAL = 0.5  # seconds between pod listings
STOP_GRACE = 15.0  # seconds; SIGTERM lets it close the head block cleanly (the WAL survives a SIGKILL too)


class PrometheusError(RuntimeError):
    pass


def pod_relabel_configs() -> list[dict[str, Any]]:
    """Scrape only annotated, Running pods, at their annotated port and path; keep namespace, pod, app."""
    meta = "__meta_kubernetes_pod_"
    return [
        {"source_labels": [f"{meta}annotation_prometheus_io_scrape"], "regex": "true", "action": "keep"},
        {"source_labels": [f"{meta}phase"], "regex": "Running", "action": "keep"},
        {
            "source_labels": [f"{meta}ip", f"{meta}annotation_prometheus_io_port"],
            "regex": r"(.+);(\d+)",
            "replacement": "$1:$2",
            "target_label": "__address__",
        },
        {
            "source_labels": [f"{meta}annotation_prometheus_io_path"],
            "regex": "(.+)",
            "target_label": "__metrics_path__",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": [f"{meta}name"], "target_label": "pod"},
        {"source_labels": [f"{meta}label_app"], "target_label": "app"},
    ]


def _label_name(name: str) -> str:
    """Prometheus's strutil.SanitizeLabelName: what Kubernetes SD does to label and annotation keys."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def file_sd_groups(pods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One file_sd target group per pod with an IP, labelled as Kubernetes SD's pod role labels it
    (pure). Sorted by namespace and name, so an unchanged set of pods gives an equal file."""
    groups = []
    meta = "__meta_kubernetes_pod_"
    for pod in sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        metadata, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        if not status.get("podIP"):
            continue
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        labels = {
            "__meta_kubernetes_namespace": metadata["namespace"],
            f"{meta}name": metadata["name"],
            f"{meta}uid": metadata.get("uid", ""),
            f"{meta}ip": status["podIP"],
            f"{meta}phase": status.get("phase", ""),
            f"{meta}ready": "true" if ready else "false",
            f"{meta}node_name": spec.get("nodeName", ""),
            f"{meta}host_ip": status.get("hostIP", ""),
        }
        for kind, values in (("label", metadata.get("labels")), ("annotation", metadata.get("annotations"))):
            for key, value in (values or {}).items():
                labels[f"{meta}{kind}_{_label_name(key)}"] = value
                labels[f"{meta}{kind}present_{_label_name(key)}"] = "true"
        groups.append({"targets": [status["podIP"]], "labels": labels})
    return groups


def build_config(
    targets_file: Path,
    *,
    rule_files: Sequence[Path] = (),
    extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The Prometheus config (pure): the pods from ``targets_file`` (``file_sd_groups``)."""
    discovery = {"files": [str(targets_file)], "refresh_interval": "1s"}
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": JOB, "file_sd_configs": [discovery], "relabel_configs": pod_relabel_configs()},
            *(dict(extra) for extra in extra_scrape_configs),
        ],
    }


class PodDiscovery:
    """Kubernetes SD's pod role, for a Prometheus built without it: lists pods (of ``namespaces``, or
    all) every ``DISCOVERY_INTERVAL`` and rewrites ``path`` (atomically) when the groups change.
    Polling, not a watch: it stops within one interval, and a missed event cannot leave it stale."""

    def __init__(self, kubeconfig: Path, path: Path, namespaces: Sequence[str] = ()) -> None:
        self.api = Api(kubeconfig)
        self.path = path
        self.namespaces = tuple(namespaces)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written: list[dict[str, Any]] | None = None

    def sync(self) -> None:
        if self.namespaces:
            pods = [
                p
                for ns in self.namespaces
                for p in self.api.call("list_namespaced_pod", ns).get("items") or []
            ]
        else:
            pods = self.api.call("list_pod_for_all_namespaces").get("items") or []
        groups = file_sd_groups(pods)
        if groups != self._written:
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(groups, indent=1))
            os.replace(temporary, self.path)
            self._written = groups

    def start(self) -> None:
        self.sync()  # the first file exists before Prometheus starts
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="prometheus-pod-discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(DISCOVERY_INTERVAL):
            try:
                self.sync()
            except Exception as error:  # the API away for a moment: keep the last file, try again
                print(f"prometheus pod discovery: {error}", flush=True)


@dataclass(frozen=True)
class WebSecurity:
    """HTTPS with a certificate of a throwaway CA, and one basic-auth user, as a production Prometheus
    behind its web config has them (the analysis provider's authentication is tested against this)."""

    username: str
    password: str
    ca: Path  # PEM: what a client trusts
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path, username: str, password: str) -> WebSecurity:
        """A new CA and a server certificate for 127.0.0.1, made with openssl in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        ca, ca_key = directory / "ca.crt", directory / "ca.key"
        cert, key, csr = directory / "server.crt", directory / "server.key", directory / "server.csr"
        san = directory / "san.cnf"
        san.write_text("subjectAltName=IP:127.0.0.1\n")
        for argv in (
            [
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                ca_key,
                "-out",
                ca,
                "-days",
                "1",
                "-subj",
                "/CN=hal9-test-ca",
            ],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            [
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                ca,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-out",
                cert,
                "-days",
                "1",
                "-extfile",
                san,
            ],
        ):
            subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True)
        return cls(username, password, ca, cert, key)

    def web_config(self) -> dict[str, Any]:
        import bcrypt  # a dev dependency: only the harness hashes passwords

        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        return {
            "tls_server_config": {"cert_file": str(self.cert), "key_file": str(self.key)},
            "basic_auth_users": {self.username: hashed},
        }


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass
class Prometheus:
    """One Prometheus server; ``start()`` picks its port the first time and keeps it."""

    workdir: Path
    kubeconfig: Path
    namespaces: Sequence[str] = ()
    rule_files: Sequence[Path] = ()
    extra_scrape_configs: Sequence[Mapping[str, Any]] = ()
    port: int = 0
    web: WebSecurity | None = None  # None: plain HTTP without authentication
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    discovery: PodDiscovery | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        if not self.port:
            raise PrometheusError("Prometheus has not been started yet: it has no port")
        return f"{'https' if self.web else 'http'}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> Prometheus:
        """Start (again: same port, same data) and wait until it is ready."""
        if self.proc is not None and self.proc.poll() is None:
            raise PrometheusError("Prometheus is already running")
        binary = shutil.which(BINARY)
        if binary is None:
            raise PrometheusError("prometheus is not installed (Debian: apt-get install prometheus)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.write_config()
        self.discovery = PodDiscovery(self.kubeconfig, self.workdir / "pods.json", self.namespaces)
        self.discovery.start()
        argv = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *([f"--web.config.file={self.workdir / 'web.yml'}"] if self.web else []),
            "--log.level=warn",
        ]
        self.proc, offset = podprocess.spawn(
            argv, env={"PATH": "/usr/bin:/bin"}, cwd=self.workdir, log_path=self.log_path
        )
        try:
            self.wait_ready(timeout, log_offset=offset)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.discovery is not None:
            self.discovery.stop()
            self.discovery = None
        if self.proc is not None:
            podprocess.stop_all([self.proc], STOP_GRACE)
            self.proc.wait()
            self.proc = None

    def write_config(self) -> None:
        config = build_config(
            self.workdir / "pods.json",
            rule_files=self.rule_files,
            extra_scrape_configs=self.extra_scrape_configs,
        )
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        if self.web is not None:
            (self.workdir / "web.yml").write_text(yaml.safe_dump(self.web.web_config()))

    def reload(self) -> None:
        """Write the config again (after changing the rules or extra scrape configs) and apply it."""
        self.write_config()
        self._get("/-/reload", method="POST")

    def wait_ready(self, timeout: float = 60, log_offset: int = 0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                output = podprocess.read_since(self.log_path, log_offset).decode(errors="replace")
                raise PrometheusError(f"prometheus exited with {self.proc.returncode}:\n{output[-3000:]}")
            try:
                self._get("/-/ready")
                return
            except (OSError, PrometheusError) as error:
                last = str(error)
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready after {timeout:g}s: {last}")

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # --- reading -----------------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query (now, or at Unix time ``at``); a vector or scalar result as samples."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query?" + urllib.parse.urlencode(params))
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return [Sample({}, float(result[1]))]
        if kind != "vector":
            raise PrometheusError(f"{promql!r} gave a {kind}, not an instant vector or scalar")
        return [Sample(dict(item["metric"]), float(item["value"][1])) for item in result]

    def value(self, promql: str, at: float | None = None) -> float | None:
        """The single value of ``promql`` (None when it has no sample; an error when it has several)."""
        samples = self.query(promql, at)
        if len(samples) > 1:
            raise PrometheusError(f"{promql!r} gave {len(samples)} samples, not one: {samples}")
        return samples[0].value if samples else None

    def scrapes(self, selector: str, seconds: int) -> list[tuple[float, float]]:
        """The raw samples of every series ``selector`` matches over the last ``seconds``, as
        (scrape timestamp, value), in time order: when something was first scraped, exactly."""
        data = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": f"{selector}[{seconds}s]"}))
        return sorted((float(t), float(v)) for series in data["result"] for t, v in series["values"])

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets (``labels``, ``health``, ``lastError``...)."""
        return list(self._get("/api/v1/targets?state=active")["activeTargets"])

    def _get(self, path: str, method: str = "GET") -> Any:
        headers, context = {}, None
        if self.web is not None:
            pair = base64.b64encode(f"{self.web.username}:{self.web.password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
            context = ssl.create_default_context(cafile=str(self.web.ca))
        request = urllib.request.Request(self.url + path, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
                body = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise PrometheusError(f"{method} {path}: {error.code} {detail[:500]}") from error
        if not path.startswith("/api/"):
            return body
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise PrometheusError(f"{path}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]
