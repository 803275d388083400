"""Pods really run on the local control plane: the node agent against the real API server, with
Kubernetes' own Job controller and garbage collector doing their part.

Each test asserts what the project relies on: exit codes and the log tail where the operator reads
a failed worker's last error line, Secrets reaching the process, JOB_COMPLETION_INDEX per index,
per-index retries after a crash, and no process outliving its deleted Job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from hal9_migration.testing import controlplane
from tests.integration.conftest import Cluster, wait_until

NODE = "hal9-local"
# On an existing cluster a real kubelet would pull the (unused) images; these tests are about the agent.
pytestmark = pytest.mark.skipif(
    controlplane.use_existing_cluster(),
    reason="tests the local control plane's node agent, which HAL9_USE_EXISTING_CLUSTER replaces",
)


@pytest.fixture
def agent_dir(cluster: Cluster) -> Path:
    assert cluster.plane is not None
    return cluster.plane.node_agent_dir


@pytest.fixture
def core(cluster: Cluster) -> Any:
    return kubernetes.client.CoreV1Api(cluster.api)


@pytest.fixture
def batch(cluster: Cluster) -> Any:
    return kubernetes.client.BatchV1Api(cluster.api)


def pod_manifest(name: str, command: list[str], restart: str = "Never", **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "node-agent-test"}, "annotations": {"note": "hi"}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "main", "image": "unused:latest", "command": command, **container}],
        },
    }


def read_pod(cluster: Cluster, core: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(cluster.api.sanitize_for_serialization(core.read_namespaced_pod(name, namespace)))


def wait_phase(cluster: Cluster, core: Any, namespace: str, name: str, *phases: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        pod = read_pod(cluster, core, namespace, name)
        return pod if pod["status"].get("phase") in phases else None

    result: dict[str, Any] = wait_until(reached, 60, f"pod {name} to reach {phases}")
    return result


def container_state(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"])


def job_manifest(name: str, command: list[str], completions: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": completions,
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "worker", "image": "unused:latest", "command": command}],
                }
            },
        },
    }


def job_pods(cluster: Cluster, core: Any, namespace: str, job: str) -> list[dict[str, Any]]:
    found = core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job}")
    return [dict(cluster.api.sanitize_for_serialization(p)) for p in found.items]


def job_condition(cluster: Cluster, batch: Any, namespace: str, name: str, kind: str) -> bool:
    job = cluster.api.sanitize_for_serialization(batch.read_namespaced_job(name, namespace))
    return any(c["type"] == kind and c["status"] == "True" for c in job["status"].get("conditions") or [])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_failing_pod_reports_its_exit_code_and_log_tail(
    cluster: Cluster, core: Any, namespace: str, agent_dir: Path
) -> None:
    script = "for i in $(seq 1 100); do echo line $i; done; echo 'fatal: shard 2 lost its target' >&2; exit 3"
    manifest = pod_manifest("fails", ["sh", "-c", script], terminationMessagePolicy="FallbackToLogsOnError")
    core.create_namespaced_pod(namespace, manifest)

    pod = wait_phase(cluster, core, namespace, "fails", "Failed", "Succeeded")
    terminated = container_state(pod)["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 3, "Error")
    # The kubelet's tail: the last 80 lines, so the error line is there and line 20 is not.
    assert terminated["message"].endswith("fatal: shard 2 lost its target\n")
    assert "line 100\n" in terminated["message"]
    assert "line 20\n" not in terminated["message"]
    assert pod["spec"]["nodeName"] == NODE
    assert pod["status"]["hostIP"] == "127.0.0.1"
    assert pod["status"]["podIP"].startswith("127.0.")
    log = agent_dir / "pods" / namespace / "fails" / "main.log"
    assert "fatal: shard 2 lost its target" in log.read_text()


def test_a_pod_without_command_fails_and_says_why(cluster: Cluster, core: Any, namespace: str) -> None:
    manifest = pod_manifest("no-command", [])
    core.create_namespaced_pod(namespace, manifest)
    pod = wait_phase(cluster, core, namespace, "no-command", "Failed", "Succeeded")
    terminated = container_state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert "no command" in terminated["message"]


def test_env_from_value_secret_configmap_and_field_refs_reaches_the_process(
    cluster: Cluster, core: Any, namespace: str, agent_dir: Path, tmp_path: Path
) -> None:
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "db"}, "stringData": {"url": "postgres://x"}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    out = tmp_path / "env"
    env = [
        {"name": "OUT", "value": str(out)},
        {"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "ABSENT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        *(
            {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
            for name, path in [
                ("POD_NAME", "metadata.name"),
                ("POD_NAMESPACE", "metadata.namespace"),
                ("POD_UID", "metadata.uid"),
                ("APP", "metadata.labels['app']"),
                ("NOTE", "metadata.annotations['note']"),
                ("NODE", "spec.nodeName"),
                ("POD_IP", "status.podIP"),
                ("HOST_IP", "status.hostIP"),
            ]
        ),
        {"name": "GREETING", "value": "$(MODE) mode for $(POD_NAME), $$(MODE) escaped"},
    ]
    manifest = pod_manifest(
        "env",
        ["sh", "-c", 'env > "$1.tmp" && mv "$1.tmp" "$1"', "sh", "$(OUT)"],
        env=env,
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
    )
    core.create_namespaced_pod(namespace, manifest)

    pod = wait_phase(cluster, core, namespace, "env", "Failed", "Succeeded")
    terminated = container_state(pod)["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == (
        "Succeeded",
        0,
        "Completed",
    )
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    expected = {
        "DB_URL": "postgres://x",
        "MODE": "fast",
        "CM_mode": "fast",
        "POD_NAME": "env",
        "POD_NAMESPACE": namespace,
        "POD_UID": pod["metadata"]["uid"],
        "APP": "node-agent-test",
        "NOTE": "hi",
        "NODE": NODE,
        "POD_IP": pod["status"]["podIP"],
        "HOST_IP": "127.0.0.1",
        "GREETING": "fast mode for env, $(MODE) escaped",
        "HOSTNAME": "env",
    }
    assert {key: seen.get(key) for key in expected} == expected
    assert "ABSENT" not in seen
    # Nothing of the agent's (or the test run's) own environment leaks into the pod.
    assert "KUBECONFIG" not in seen
    assert seen["HOME"].startswith(str(agent_dir))
    assert seen["PATH"].split(":")[0] == str(Path(sys.executable).parent)


def test_a_missing_secret_holds_the_pod_until_it_exists(cluster: Cluster, core: Any, namespace: str) -> None:
    env = [{"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": "late-secret", "key": "url"}}}]
    core.create_namespaced_pod(namespace, pod_manifest("waits", ["sh", "-c", 'test "$DB_URL" = ok'], env=env))

    def config_error() -> dict[str, Any] | None:
        pod = read_pod(cluster, core, namespace, "waits")
        statuses = pod["status"].get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting") or {}
        return pod if waiting.get("reason") == "CreateContainerConfigError" else None

    pod = wait_until(config_error, 30, "CreateContainerConfigError")
    assert pod["status"]["phase"] == "Pending"
    assert container_state(pod)["waiting"]["message"] == 'secret "late-secret" not found'

    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "late-secret"}, "stringData": {"url": "ok"}}
    )
    pod = wait_phase(cluster, core, namespace, "waits", "Failed", "Succeeded")
    assert pod["status"]["phase"] == "Succeeded"


def test_an_indexed_job_completes_with_each_pod_seeing_its_index(
    cluster: Cluster, core: Any, batch: Any, namespace: str, tmp_path: Path
) -> None:
    script = f'echo "$HOSTNAME" > {tmp_path}/index-$JOB_COMPLETION_INDEX'
    batch.create_namespaced_job(namespace, job_manifest("indexed", ["sh", "-c", script]))

    wait_until(
        lambda: job_condition(cluster, batch, namespace, "indexed", "Complete"), 60, "the Job to complete"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index-0", "index-1", "index-2"]
    for index in range(3):
        assert (tmp_path / f"index-{index}").read_text() == f"indexed-{index}\n"  # the Job's hostnames
    ips = [p["status"]["podIP"] for p in job_pods(cluster, core, namespace, "indexed")]
    assert len(set(ips)) == 3, ips


def test_a_killed_index_is_retried_by_the_job_controller(
    cluster: Cluster, core: Any, batch: Any, namespace: str, agent_dir: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    script = f"while [ ! -e {go} ]; do sleep 0.1; done"
    manifest = job_manifest("retry", ["sh", "-c", script], backoffLimitPerIndex=1, maxFailedIndexes=0)
    batch.create_namespaced_job(namespace, manifest)

    def pid_of_index_1() -> int | None:
        for pod in job_pods(cluster, core, namespace, "retry"):
            index = pod["metadata"]["labels"].get("batch.kubernetes.io/job-completion-index")
            if index == "1" and pod["status"].get("phase") == "Running":
                pid_file = agent_dir / "pods" / namespace / pod["metadata"]["name"] / "worker.pid"
                return int(pid_file.read_text())
        return None

    victim = wait_until(pid_of_index_1, 60, "index 1 to run")
    os.kill(victim, signal.SIGKILL)

    def failed_pod() -> dict[str, Any] | None:
        failed = [
            p for p in job_pods(cluster, core, namespace, "retry") if p["status"].get("phase") == "Failed"
        ]
        return failed[0] if failed else None

    killed = wait_until(failed_pod, 30, "the killed pod to fail")
    assert container_state(killed)["terminated"]["exitCode"] == 137  # 128 + SIGKILL
    assert killed["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
    replacement = wait_until(pid_of_index_1, 60, "the Job controller to start index 1 again")
    assert replacement != victim
    go.touch()
    wait_until(
        lambda: job_condition(cluster, batch, namespace, "retry", "Complete"), 60, "the Job to complete"
    )
    job = cluster.api.sanitize_for_serialization(batch.read_namespaced_job("retry", namespace))
    assert (job["status"]["succeeded"], job["status"]["failed"], job["status"]["completedIndexes"]) == (
        3,
        1,
        "0-2",
    )


def test_deleting_a_job_stops_its_processes(
    cluster: Cluster, core: Any, batch: Any, namespace: str, agent_dir: Path
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("doomed", ["sleep", "300"], completions=2))

    def pids() -> list[int] | None:
        pods = job_pods(cluster, core, namespace, "doomed")
        if len(pods) < 2 or any(p["status"].get("phase") != "Running" for p in pods):
            return None
        return [
            int((agent_dir / "pods" / namespace / p["metadata"]["name"] / "worker.pid").read_text())
            for p in pods
        ]

    running = wait_until(pids, 60, "both pods to run")
    assert all(alive(pid) for pid in running)
    # What `kubectl wait --for=condition=Ready` and the Job's `ready` count read.
    pod = job_pods(cluster, core, namespace, "doomed")[0]
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions == {
        "PodScheduled": "True",
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    status = pod["status"]["containerStatuses"][0]
    assert (status["ready"], status["started"], status["restartCount"]) == (True, True, 0)
    assert status["state"]["running"]["startedAt"]
    batch.delete_namespaced_job("doomed", namespace, propagation_policy="Background")

    wait_until(
        lambda: not job_pods(cluster, core, namespace, "doomed"),
        60,
        "the garbage collector to remove the pods",
    )
    assert not any(alive(pid) for pid in running)


def test_on_failure_restarts_and_counts(cluster: Cluster, core: Any, namespace: str, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    script = f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; [ "$n" -ge 3 ]'
    core.create_namespaced_pod(namespace, pod_manifest("flaky", ["sh", "-c", script], restart="OnFailure"))

    pod = wait_phase(cluster, core, namespace, "flaky", "Succeeded", "Failed")
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Succeeded"
    assert counter.read_text() == "3\n"
    assert status["restartCount"] == 2
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["state"]["terminated"]["exitCode"] == 0


@pytest.mark.parametrize("how", ["agent-killed", "cluster-stopped"])
def test_no_pod_process_outlives_the_node_agent(tmp_path: Path, how: str) -> None:
    """A SIGKILLed agent takes its pods' processes with it (PR_SET_PDEATHSIG); a stopped one stops them."""
    workdir = tmp_path / "cluster"
    parent = subprocess.Popen(
        [sys.executable, "-m", "hal9_migration.cli", "local-cluster", "up", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert parent.stdout is not None
        assert "control plane ready" in parent.stdout.readline()
        kubectl = [str(controlplane.binaries_dir() / "kubectl"), f"--kubeconfig={workdir / 'kubeconfig'}"]
        manifest = json.dumps(pod_manifest("sleeper", ["sleep", "300"]))
        subprocess.run(
            [*kubectl, "create", "-f", "-"], input=manifest, text=True, check=True, capture_output=True
        )
        pid_file = workdir / "node-agent" / "pods" / "default" / "sleeper" / "main.pid"
        pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, "the pod to start"))
        assert alive(pid)
        if how == "agent-killed":
            os.kill(int((workdir / "node-agent" / "ready").read_text()), signal.SIGKILL)
        else:
            parent.send_signal(signal.SIGTERM)
        wait_until(lambda: not alive(pid), 30, "the pod's process to exit")
    finally:
        parent.terminate()
        parent.wait(timeout=60)
