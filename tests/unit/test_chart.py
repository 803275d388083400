"""The Helm chart as helm renders it: lint, each RBAC mode, peering, the Deployment, the optional parts,
and a values schema that refuses what a user mistypes.

These run the real helm (built from its Go module by ``hack/build-helm.sh``) on the chart; installing
it into a real control plane is tests/integration/test_chart.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from hal9_migration.testing import helm

RELEASE = "hal9"
NAMESPACE = "hal9-system"
FULLNAME = "hal9-hal9-migration-operator"
WATCHED = ["team-a", "team-b"]
ALL_ON = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True, "annotations": {"grafana_folder": "HAL9"}},
}
FILES = helm.CHART / "files"
CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces", "clusterkopfpeerings"}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        d
        for d in helm.template(values, release=RELEASE, namespace=NAMESPACE)
        if d["kind"] != "CustomResourceDefinition"
    ]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = of_kind(docs, kind)
    return found


def grants(rules: list[dict[str, Any]], resource: str, verb: str) -> bool:
    return any(resource in r["resources"] and verb in r["verbs"] for r in rules)


def chart_rules() -> list[dict[str, Any]]:
    return list(yaml.safe_load((FILES / "rbac-rules.yaml").read_text()))


def assert_no_wildcards(docs: list[dict[str, Any]]) -> None:
    for doc in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in doc["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(field, [])), (doc["metadata"], rule)


@pytest.mark.parametrize(
    "values",
    [None, {"watchNamespaces": WATCHED}, ALL_ON, {"replicaCount": 1}],
    ids=["default", "namespaced", "all-on", "one-replica"],
)
def test_helm_lint_strict_passes(values: dict[str, Any] | None) -> None:
    result = helm.run("lint", "--strict", str(helm.CHART), values=values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_the_crds_ship_in_crds_and_install_first() -> None:
    crds = {d["metadata"]["name"] for d in helm.template() if d["kind"] == "CustomResourceDefinition"}
    assert crds == {
        "hal9migrations.migration.hal9.ai",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    }


def test_cluster_wide_by_default_one_clusterrole_with_the_operators_rules_and_its_peering() -> None:
    docs = render()
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")
    role = one(docs, "ClusterRole")
    assert role["metadata"]["name"] == FULLNAME
    # Exactly the rules test_rbac.py proves sufficient, plus kopf's cluster-wide peering.
    peering = {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    }
    assert sorted(json.dumps(r, sort_keys=True) for r in role["rules"]) == sorted(
        json.dumps(r, sort_keys=True) for r in [*chart_rules(), peering]
    )
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == FULLNAME
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    assert one(docs, "ServiceAccount")["metadata"] == {
        "name": FULLNAME,
        "namespace": NAMESPACE,
        "labels": one(docs, "ServiceAccount")["metadata"]["labels"],
    }
    peer = one(docs, "ClusterKopfPeering")
    assert (peer["apiVersion"], peer["metadata"]["name"]) == ("kopf.dev/v1", FULLNAME)
    assert not of_kind(docs, "KopfPeering")
    assert_no_wildcards(docs)
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--namespace")]


def test_namespaced_mode_reads_secrets_only_through_roles_in_the_watched_namespaces() -> None:
    docs = render({"watchNamespaces": WATCHED})
    roles = of_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == WATCHED
    for role in roles:
        assert grants(role["rules"], "secrets", "get")
        assert grants(role["rules"], "hal9migrations", "watch") and grants(
            role["rules"], "kopfpeerings", "patch"
        )
        # Cluster-scoped resources cannot be granted by a Role; none is asked for.
        assert not CLUSTER_SCOPED & {res for r in role["rules"] for res in r["resources"]}
    bindings = of_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == WATCHED
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": FULLNAME,
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    # The one ClusterRole: kopf's reads of CRDs and namespaces, nothing else.
    cluster_role = one(docs, "ClusterRole")
    assert cluster_role["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    # Every namespaced rule of the operator is in each Role: nothing it needs was lost in the split.
    namespaced = [r for r in chart_rules() if not CLUSTER_SCOPED & set(r["resources"])]
    for role in roles:
        assert all(rule in role["rules"] for rule in namespaced)
    peers = of_kind(docs, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peers) == [
        (ns, FULLNAME) for ns in WATCHED
    ]
    assert not of_kind(docs, "ClusterKopfPeering")
    assert_no_wildcards(docs)
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == [f"--namespace={ns}" for ns in WATCHED]


def test_the_deployment_runs_peered_replicas_with_probes_resources_and_a_restricted_context() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME and pod["automountServiceAccountToken"] is True
    [container] = pod["containers"]
    assert container["command"] == ["hal9-migration"]
    assert container["args"][:5] == [
        "run",
        f"--peering={FULLNAME}",
        "--peering-lifetime=15",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics=0.0.0.0:8081",
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 8081}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    # The metrics Service selects the operator's pods on the metrics port.
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}
    ]
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["selector"]["matchLabels"] == service["spec"]["selector"]
    budget = one(docs, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1 and budget["spec"]["selector"] == spec["selector"]


def test_one_replica_gets_no_disruption_budget_and_keeps_its_peering() -> None:
    docs = render({"replicaCount": 1})
    assert not of_kind(docs, "PodDisruptionBudget")
    assert (
        f"--peering={FULLNAME}"
        in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_the_listen_address_ports_and_extra_env_reach_the_container() -> None:
    docs = render(
        {
            "listenAddress": "$(POD_IP)",
            "ports": {"health": 9080, "metrics": 9081},
            "extraEnv": [{"name": "HAL9_RECHECK_SECONDS", "value": "5"}],
        }
    )
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--liveness=http://$(POD_IP):9080/healthz" in container["args"]
    assert "--metrics=$(POD_IP):9081" in container["args"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"health": 9080, "metrics": 9081}
    assert one(docs, "Service")["spec"]["ports"][0]["port"] == 9081
    names = [e["name"] for e in container["env"]]
    # POD_IP is declared before anything refers to it (the kubelet expands in order).
    assert names[0] == "POD_IP" and "HAL9_RECHECK_SECONDS" in names


def test_the_optional_parts_are_off_by_default() -> None:
    kinds = {d["kind"] for d in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "ConfigMap"}


def test_all_optional_parts_render_from_the_charts_files() -> None:
    docs = render(ALL_ON)
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    # OperatorDown looks for this job: without the relabeling it would be named after the Service.
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"][0]["rules"]
    down = next(r for r in rules if r["alert"] == "Hal9MigrationOperatorDown")
    assert 'job="hal9-migration-operator"' in down["expr"]
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "metrics",
            "path": "/metrics",
            "interval": "30s",
            "scrapeTimeout": "10s",
            "relabelings": [{"targetLabel": "job", "replacement": "hal9-migration-operator"}],
        }
    ]
    assert monitor["spec"]["selector"]["matchLabels"] == one(docs, "Service")["spec"]["selector"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    rule = one(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
    dashboard = one(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "HAL9"}
    [(key, text)] = dashboard["data"].items()
    assert key.endswith(".json")
    assert json.loads(text) == json.loads((FILES / "dashboard.json").read_text())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCont": 3}, "replicaCont"),
        ({"serviceMonitor": {"enable": True}}, "enable"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ],
    ids=["misspelt-top-level-key", "misspelt-nested-key", "wrong-type", "bad-namespace-name", "bad-enum"],
)
def test_the_values_schema_refuses_mistakes_naming_the_key(values: dict[str, Any], message: str) -> None:
    for command in (["template", RELEASE], ["lint", "--strict"]):
        result = helm.run(*command, str(helm.CHART), values=values)
        assert result.returncode != 0, result.stdout
        output = result.stdout + result.stderr
        assert "values don't meet the specifications of the schema" in output, output
        assert message in output, output
