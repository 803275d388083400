"""Integration fixtures: a real control plane, the CRDs installed, a namespace, the real operator.

The control plane is the local one (etcd + kube-apiserver + kube-controller-manager built from their
Go modules), or the current ``$KUBECONFIG`` cluster when ``HAL9_USE_EXISTING_CLUSTER=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from hal9_migration.testing import controlplane
from tests.support.manifests import ROOT

OWN_CRDS = ROOT / "crds"
THIRD_PARTY_CRDS = ROOT / "tests" / "fixtures" / "third-party-crds"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@dataclass
class Cluster:
    env: dict[str, str]
    kubectl_path: str
    api: kubernetes.client.ApiClient
    plane: controlplane.ControlPlane | None  # None on an existing cluster (HAL9_USE_EXISTING_CLUSTER)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_path, *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if controlplane.use_existing_cluster():
        env = dict(os.environ)
        kubectl = shutil.which("kubectl") or pytest.fail("HAL9_USE_EXISTING_CLUSTER needs kubectl on PATH")
        yield _connect(env, kubectl, None)
        return
    with controlplane.running(tmp_path_factory.mktemp("controlplane")) as plane:
        yield _connect(plane.env(), plane.kubectl, plane)


def _connect(env: dict[str, str], kubectl: str, plane: controlplane.ControlPlane | None) -> Cluster:
    api = kubernetes.config.new_client_from_config(config_file=env.get("KUBECONFIG"))
    found = Cluster(env=env, kubectl_path=kubectl, api=api, plane=plane)
    found.kubectl("apply", "--server-side", "-f", str(OWN_CRDS))
    # The mesh and monitoring CRDs are created only where absent: on an existing cluster they may be
    # the real installation's, which a test must never replace.
    created = found.kubectl("create", "-f", str(THIRD_PARTY_CRDS), check=False)
    unexpected = [
        line for line in created.stderr.splitlines() if "AlreadyExists" not in line and line.strip()
    ]
    assert not unexpected, created.stderr
    # A CRD created a moment ago may not have its conditions yet, which `kubectl wait` calls an error.
    wait_until(
        lambda: (
            found.kubectl(
                "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all", check=False
            ).returncode
            == 0
        ),
        90,
        "the CRDs to be established",
    )
    return found


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


class OperatorProcess:
    """``hal9-migration run`` as a real process, the way the Deployment runs it."""

    def __init__(
        self,
        env: dict[str, str],
        namespace: str,
        log_dir: Path,
        namespaced: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.env = {**env, "HAL9_RECHECK_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
        self.extra_args = extra_args  # e.g. ("--metrics", "127.0.0.1:PORT")
        self.namespace = namespace  # where the test's objects live
        self.namespaced = namespaced  # False: watch every namespace, as `hal9-migration run` does by default
        self.log_dir = log_dir
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        command = [sys.executable, "-m", "hal9_migration.cli", "run"]
        if self.namespaced:
            command += ["--namespace", self.namespace]
        command += self.extra_args
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.logs(), timeout, f"operator log line {text!r}:\n{self.logs()}")


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(cluster.env, namespace, tmp_path)
    process.start()
    yield process
    stop_operator(cluster, process)


def stop_operator(cluster: Cluster, process: OperatorProcess) -> None:
    """Delete the test's migrations while the operator still runs (it removes its finalizer, so the
    namespace can go too), then stop it; a traceback in its log fails the test."""
    try:
        if process.proc is not None and process.proc.poll() is None:
            cluster.kubectl("delete", "h9m", "--all", "-n", process.namespace, "--timeout=30s")
    finally:
        process.stop()
    assert "Traceback" not in process.logs(), process.logs()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# The real-traffic harness. Registered here once: a session fixture imported into two test modules
# would be two fixtures, and the second data plane would find the first's fixed ports. The support
# modules import this one, hence the imports inside.
@pytest.fixture(scope="session")
def dataplane(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.dataplane import running_dataplane

    yield from running_dataplane(cluster, tmp_path_factory)


@pytest.fixture
def standins(cluster: Cluster, namespace: str) -> Any:
    from tests.support.traffic import start_standins

    return start_standins(cluster, namespace)


@pytest.fixture
def prometheus(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Any]:
    from tests.support.traffic import running_prometheus

    yield from running_prometheus(cluster, namespace, tmp_path)


@pytest.fixture
def scenario(
    cluster: Cluster,
    namespace: str,
    dataplane: Any,
    prometheus: Any,
    standins: Any,
    operator: OperatorProcess,
) -> Iterator[Any]:
    """A whole migration on real traffic (``tests.support.scenario``), stopped after the test."""
    from tests.support.scenario import Scenario

    found = Scenario(cluster, namespace, dataplane, prometheus, standins, operator)
    try:
        yield found
    finally:
        found.stop()
