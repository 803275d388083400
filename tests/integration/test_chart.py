"""The Helm chart installed for real into the local control plane, its operator running in its pods.

`helm install --wait` succeeds only when the Deployment's pods are Ready: the node agent runs them as
local processes from the rendered command, args and environment, and mounts what the kubelet mounts,
so the operator logs in in-cluster with its own ServiceAccount's token (not the admin's). That operator
then walks a migration to Full; in namespaced mode its token cannot read another namespace's Secrets;
`helm uninstall` removes everything but the CRDs.

The session's control plane is shared: the release whose pods run watches only this module's
namespaces. The cluster-wide mode is installed with no replica (nothing acts on other tests' objects).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from hal9_migration.testing import helm
from tests.integration.conftest import Cluster, wait_until
from tests.integration.test_engine import get, wait_condition
from tests.integration.test_state_migration import put_secret, state_manifest
from tests.support.manifests import workloads
from tests.support.statemigration import Pair

CHART = str(helm.CHART)
INSTALL_TIMEOUT = "180s"
PORTS = {"health": 28080, "metrics": 28081}


@dataclass
class Release:
    name: str
    namespace: str
    watched: list[str]  # the operator's namespaces; the migration runs in the first
    elsewhere: str  # a namespace it does not watch
    fullname: str
    install_seconds: float


def kubectl_json(cluster: Cluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl(*args, "-o", "json").stdout))


def helm_run(cluster: Cluster, *args: str, values: dict[str, Any] | None = None) -> str:
    result = helm.run(*args, values=values, env={"KUBECONFIG": cluster.env["KUBECONFIG"]})
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def operator_pods(cluster: Cluster, release: Release) -> list[dict[str, Any]]:
    pods = kubectl_json(
        cluster, "get", "pods", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={release.name}"
    )
    return list(pods["items"])


def pod_dir(cluster: Cluster, pod: dict[str, Any]) -> Path:
    """Where the node agent keeps the pod's logs and ServiceAccount files."""
    assert cluster.plane is not None
    meta: dict[str, str] = pod["metadata"]
    return cluster.plane.node_agent_dir / "pods" / meta["namespace"] / meta["name"]


def client_with_token(cluster: Cluster, token: str) -> kubernetes.client.ApiClient:
    """A client that authenticates with ``token`` alone (the admin's kubeconfig gives only the server
    and its CA)."""
    admin = cluster.api.configuration
    config = kubernetes.client.Configuration()
    config.host = admin.host
    config.ssl_ca_cert = admin.ssl_ca_cert
    config.api_key = {"authorization": f"Bearer {token}"}
    return kubernetes.client.ApiClient(config)


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[Release]:
    """The chart in namespaced mode (two watched namespaces, the default two replicas), installed with
    --wait; uninstalled after the module unless a test already did."""
    if cluster.plane is None:
        pytest.skip("the operator's pods run on the local control plane's node agent (no image is pulled)")
    suffix = uuid.uuid4().hex[:6]
    namespace, watched, elsewhere = (
        f"chart-{suffix}",
        [f"chart-{suffix}-a", f"chart-{suffix}-b"],
        f"chart-{suffix}-x",
    )
    for name in [*watched, elsewhere]:
        cluster.kubectl("create", "namespace", name)
    values = {
        "watchNamespaces": watched,
        # Pods here share the machine's network: each binds its own pod IP (a loopback address), on
        # ports Envoy Gateway (which binds *:8080 and *:8081 in the data-plane tests) leaves free.
        "listenAddress": "$(POD_IP)",
        "ports": PORTS,
        "extraEnv": [
            {"name": "HAL9_RECHECK_SECONDS", "value": "1"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "peering": {"lifetimeSeconds": 10},
    }
    name = f"hal9-{suffix}"
    started = time.monotonic()
    helm_run(
        cluster,
        "install",
        name,
        CHART,
        "-n",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        INSTALL_TIMEOUT,
        values=values,
    )
    took = time.monotonic() - started
    print(f"helm install --wait: {took:.1f} s")
    found = Release(name, namespace, watched, elsewhere, f"{name}-hal9-migration-operator", took)
    yield found
    if (
        helm.run("status", name, "-n", namespace, env={"KUBECONFIG": cluster.env["KUBECONFIG"]}).returncode
        == 0
    ):
        for ns in watched:  # the operator removes its finalizers while it still runs
            cluster.kubectl("delete", "h9m", "--all", "-n", ns, "--timeout=60s", check=False)
        helm.run("uninstall", name, "-n", namespace, "--wait", env={"KUBECONFIG": cluster.env["KUBECONFIG"]})
    for ns in [namespace, *watched, elsewhere]:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def test_install_waits_for_two_ready_replicas_running_the_rendered_command(
    cluster: Cluster, release: Release
) -> None:
    deployment = kubectl_json(cluster, "get", "deployment", release.fullname, "-n", release.namespace)
    assert deployment["status"].get("readyReplicas") == 2
    pods = operator_pods(cluster, release)
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == release.fullname
        pid = int((pod_dir(cluster, pod) / "operator.pid").read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        # The rendered command and args, $(POD_IP) expanded by the kubelet's rules.
        assert b"run" in argv and f"--peering={release.fullname}".encode() in argv
        assert f"--liveness=http://{pod['status']['podIP']}:{PORTS['health']}/healthz".encode() in argv
        environ = dict(
            line.split(b"=", 1)
            for line in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"=" in line
        )
        # No kubeconfig: the only way in is the ServiceAccount token the node agent mounted.
        assert b"KUBECONFIG" not in environ and b"KUBERNETES_SERVICE_HOST" in environ

    # Only one replica acts, the one of the highest priority; the other waits in the peering.
    def acting(log: str) -> bool:
        return log.rfind("Resuming operations") > log.rfind("Pausing operations")

    def priority(log: str) -> int:
        return int(log.split(" with priority ", 1)[1].split()[0])

    def read_logs() -> list[str]:
        return [(pod_dir(cluster, p) / "operator.log").read_text() for p in pods]

    wait_until(lambda: any(acting(log) for log in read_logs()), 30, "a replica to act")
    time.sleep(2)  # a second acting replica would show by now
    logs = read_logs()
    assert [acting(log) for log in logs].count(True) == 1, logs
    assert acting(max(logs, key=priority))
    assert not any("Traceback" in log for log in logs), logs


def test_the_pods_token_is_its_service_accounts_and_cannot_read_secrets_elsewhere(
    cluster: Cluster, release: Release
) -> None:
    watched, elsewhere = release.watched[0], release.elsewhere
    for ns in (watched, elsewhere):
        put_secret(cluster, ns, "db", {"url": "sqlite:///nowhere.db"})
    pod = operator_pods(cluster, release)[0]
    account = pod_dir(cluster, pod) / "serviceaccount"
    assert (account / "namespace").read_text() == release.namespace
    api = client_with_token(cluster, (account / "token").read_text())
    client = kubernetes.client
    review = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
    assert review.status is not None and review.status.user_info is not None
    assert review.status.user_info.username == f"system:serviceaccount:{release.namespace}:{release.fullname}"
    core = kubernetes.client.CoreV1Api(api)
    assert core.read_namespaced_secret("db", watched).data  # through the watched namespace's Role
    for read in (
        lambda: core.read_namespaced_secret("db", elsewhere),
        lambda: core.list_namespaced_secret(elsewhere),
        lambda: core.list_secret_for_all_namespaces(),
    ):
        with pytest.raises(ApiException) as refused:
            read()
        assert refused.value.status == 403
    attributes = client.V1ResourceAttributes(namespace=elsewhere, verb="get", resource="secrets")
    access = client.AuthorizationV1Api(api).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
        )
    )
    assert access.status is not None and access.status.allowed is False


def test_the_installed_operator_walks_a_migration_to_full(
    cluster: Cluster, release: Release, tmp_path: Path
) -> None:
    namespace = release.watched[0]
    databases = Pair("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
    databases.seed(500)
    put_secret(cluster, namespace, "hal9-flat-db", {"url": databases.source})
    put_secret(cluster, namespace, "hal9-hier-db", {"url": databases.target})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    obj = state_manifest(workers=1)
    obj["spec"]["targetPhase"] = "Full"
    started = time.monotonic()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))
    done = wait_condition(cluster, namespace, "Ready", "TargetReached", timeout=180)
    print(f"migration to Full under the installed operator: {time.monotonic() - started:.1f} s")
    status = done["status"]
    assert (status["phase"], status["weight"]) == ("Full", 100)
    # Every step of the plan, once, in order: none skipped, none repeated.
    walked = [
        (h["reason"], h["to"], h["weight"])
        for h in status["history"]
        if h["reason"] in ("Started", "Advanced")
    ]
    assert walked == [
        ("Started", "Shadow", 0),
        *[("Advanced", "Canary", w) for w in (1, 5, 10, 25)],
        ("Advanced", "StateMigration", 25),
        *[("Advanced", "RampUp", w) for w in (50, 75, 90)],
        ("Advanced", "Full", 100),
    ], status["history"]
    assert databases.query(databases.target, "SELECT COUNT(*) FROM hierarchical_units") == [(500,)]
    route = kubectl_json(cluster, "get", "virtualservice", "hal9", "-n", namespace)
    primary = next(r for r in route["spec"]["http"] if r["name"] == "primary")
    assert [d["weight"] for d in primary["route"]] == [0, 100]
    # No token reaches the state-migration worker. (Its pods name no ServiceAccount, and this control
    # plane runs without the admission plugin that would name `default`; in a cluster, the Job's
    # automountServiceAccountToken: false, unit-tested in test_statejob, is what keeps it out.)
    workers = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", "batch.kubernetes.io/job-name")[
        "items"
    ]
    assert workers and all(not (pod_dir(cluster, w) / "serviceaccount").exists() for w in workers)
    logs = "".join(
        (pod_dir(cluster, p) / "operator.log").read_text() for p in operator_pods(cluster, release)
    )
    assert "Forbidden" not in logs and "Traceback" not in logs, logs
    assert get(cluster, namespace)["status"]["phase"] == "Full"


def test_uninstall_removes_the_release_and_keeps_the_crds(cluster: Cluster, release: Release) -> None:
    for ns in release.watched:  # the operator removes its finalizers while it still runs
        cluster.kubectl("delete", "h9m", "--all", "-n", ns, "--timeout=60s")
    helm_run(
        cluster, "uninstall", release.name, "-n", release.namespace, "--wait", "--timeout", INSTALL_TIMEOUT
    )
    left = cluster.kubectl(
        "get",
        "deployment,service,serviceaccount,poddisruptionbudget,kopfpeering,role,rolebinding",
        "-A",
        "-l",
        f"app.kubernetes.io/instance={release.name}",
        "-o",
        "name",
    ).stdout
    assert left.strip() == ""
    cluster_wide = cluster.kubectl("get", "clusterrole,clusterrolebinding", "-o", "name").stdout
    assert release.fullname not in cluster_wide
    wait_until(lambda: not operator_pods(cluster, release), 30, "the operator's pods to go")
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout
    for crd in ("hal9migrations.migration.hal9.ai", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        assert crd in crds


def test_cluster_wide_with_every_optional_part_installs_and_uninstalls(cluster: Cluster) -> None:
    """No replica: a cluster-wide operator would act on the other tests' migrations."""
    name = f"hal9-cw-{uuid.uuid4().hex[:6]}"
    namespace = name
    values = {
        "replicaCount": 0,
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
    fullname = f"{name}-hal9-migration-operator"
    env = {"KUBECONFIG": cluster.env["KUBECONFIG"]}
    try:
        helm_run(
            cluster,
            "install",
            name,
            CHART,
            "-n",
            namespace,
            "--create-namespace",
            "--wait",
            "--timeout",
            INSTALL_TIMEOUT,
            values=values,
        )
        installed = cluster.kubectl(
            "get",
            "servicemonitor,prometheusrule,configmap,service,deployment,serviceaccount",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={name}",
            "-o",
            "name",
        ).stdout.split()
        assert sorted(installed) == sorted(
            [
                f"servicemonitor.monitoring.coreos.com/{fullname}",
                f"prometheusrule.monitoring.coreos.com/{fullname}",
                f"configmap/{fullname}-dashboard",
                f"service/{fullname}-metrics",
                f"deployment.apps/{fullname}",
                f"serviceaccount/{fullname}",
            ]
        )
        role = kubectl_json(cluster, "get", "clusterrole", fullname)
        assert any("secrets" in r["resources"] for r in role["rules"])
        assert cluster.kubectl("get", "clusterkopfpeering", fullname, "-o", "name").stdout.strip()
        helm_run(cluster, "uninstall", name, "-n", namespace, "--wait")
        gone = cluster.kubectl(
            "get", "clusterrole,clusterrolebinding,clusterkopfpeering", "-o", "name"
        ).stdout
        assert fullname not in gone
        assert (
            cluster.kubectl(
                "get",
                "servicemonitor,prometheusrule,configmap",
                "-n",
                namespace,
                "-l",
                f"app.kubernetes.io/instance={name}",
                "-o",
                "name",
            ).stdout.strip()
            == ""
        )
    finally:
        if helm.run("status", name, "-n", namespace, env=env).returncode == 0:
            helm.run("uninstall", name, "-n", namespace, "--wait", env=env)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)
