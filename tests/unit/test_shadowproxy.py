"""The shadow proxy's Deployment and Service as manifests, and its name (pure)."""

from __future__ import annotations

import argparse
import copy
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hal9_migration import shadowproxy
from hal9_migration.models import Hal9MigrationSpec
from hal9_migration.shadow import config
from tests.support.manifests import load_sample

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
subdomain_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
names = st.lists(subdomain_label, min_size=1, max_size=30).map(".".join).filter(lambda n: len(n) <= 253)
FLAT_PORTS = [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "grpc", "port": 9000}]


def spec(**shadow: Any) -> Hal9MigrationSpec:
    raw = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    raw.setdefault("phases", {})["shadow"] = {"duration": "1h", **shadow}
    return Hal9MigrationSpec.model_validate(raw)


def deployment(s: Hal9MigrationSpec | None = None) -> dict[str, Any]:
    return shadowproxy.build_deployment(
        namespace="hal9",
        migration="m",
        uid="uid-1",
        spec=s or spec(),
        image="registry.example/hal9-migration-operator:1.2.3",
        flat_port=80,
        hierarchical_port=8080,
    )


@given(names)
def test_the_name_is_a_service_name_for_any_migration_name(name: str) -> None:
    proxy = shadowproxy.proxy_name(name)
    assert DNS_1035.match(proxy) and len(proxy) <= 63, proxy


def test_long_names_that_share_a_prefix_get_different_proxies() -> None:
    a, b = "x" * 100 + "a", "x" * 100 + "b"
    assert shadowproxy.proxy_name(a) != shadowproxy.proxy_name(b)
    assert shadowproxy.proxy_name("checkout") == "shadow-checkout"


def test_the_deployment_runs_the_proxy_against_both_services() -> None:
    d = deployment(
        spec(
            proxy={
                "ignoreFields": ["meta.requestId", "ts"],
                "redactFields": ["user.email"],
                "shadowTimeout": "500ms",
            }
        )
    )
    pod = d["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/hal9-migration-operator:1.2.3"
    assert container["command"] == ["hal9-migration", "shadow-proxy"]
    args = container["args"]

    def values(flag: str) -> list[str]:
        return [args[i + 1] for i, a in enumerate(args) if a == flag]

    assert values("--flat") == ["http://hal9-flat.hal9.svc.cluster.local:80"]
    assert values("--hierarchical") == ["http://hal9-hierarchical.hal9.svc.cluster.local:8080"]
    assert values("--migration") == ["m"]
    assert values("--ignore-field") == ["meta.requestId", "ts"]
    assert values("--redact-field") == ["user.email"]
    assert values("--shadow-timeout") == ["0.5"]
    assert values("--shadow-percent") == ["100"]
    assert values("--listen") == ["$(POD_IP):8480"]
    # Scraped where the harness and a usual Prometheus look; probed on the admin port.
    annotations = d["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8481"
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    owner = d["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Hal9Migration",
        "m",
        "uid-1",
        True,
    )


def test_every_argument_the_operator_passes_is_one_the_proxy_accepts() -> None:
    """The manifest and the proxy's command line stay in step: the rendered args, with the kubelet's
    $(POD_IP) filled in, parse into the configuration the spec asked for."""
    s = spec(
        mirrorPercent=40,
        proxy={
            "ignoreFields": ["meta.requestId"],
            "redactHeaders": ["x-api-key"],
            "redactFields": ["user.email"],
            "confidenceField": "meta.confidence",
            "confidenceTolerance": 0.05,
            "shadowTimeout": "250ms",
            "maxInFlight": 64,
        },
    )
    args = shadowproxy.proxy_args(s, "m", "hal9", 80, 8080)
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    parsed = config.from_arguments(parser.parse_args([a.replace("$(POD_IP)", "10.0.0.7") for a in args]))
    assert (parsed.flat.host, parsed.flat.port) == ("hal9-flat.hal9.svc.cluster.local", 80)
    assert (parsed.hierarchical.host, parsed.hierarchical.port) == (
        "hal9-hierarchical.hal9.svc.cluster.local",
        8080,
    )
    assert parsed.listen == ("10.0.0.7", 8480) and parsed.admin == ("10.0.0.7", 8481)
    assert (parsed.migration, parsed.shadow_percent, parsed.shadow_timeout, parsed.max_in_flight) == (
        "m",
        40,
        0.25,
        64,
    )
    assert parsed.rules.confidence_tolerance == 0.05


def test_an_image_in_the_spec_wins_over_the_operators() -> None:
    d = deployment(spec(proxy={"image": "mine:1"}))
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "mine:1"


def test_the_service_has_flats_ports_and_selects_the_proxy_pods() -> None:
    service = shadowproxy.build_service(namespace="hal9", migration="m", uid="uid-1", flat_ports=FLAT_PORTS)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "grpc", "port": 9000, "targetPort": "http", "protocol": "TCP"},
    ]
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    assert deployment()["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_the_hash_changes_with_the_spec_and_only_with_it() -> None:
    def digest(d: dict[str, Any]) -> str:
        return str(d["metadata"]["annotations"][shadowproxy.HASH_ANNOTATION])

    assert digest(deployment()) == digest(deployment())
    assert digest(deployment(spec(proxy={"replicas": 2}))) != digest(deployment())


def test_the_port_sent_to_is_the_wanted_one_or_the_first() -> None:
    service = {"metadata": {"name": "hal9-flat"}, "spec": {"ports": FLAT_PORTS}}
    assert shadowproxy.service_port(service, None) == (80, "")
    assert shadowproxy.service_port(service, 9000) == (9000, "")
    assert shadowproxy.service_port(service, 81) == (
        None,
        "Service hal9-flat has no port 81 (phases.shadow.proxy.port); it has 80, 9000",
    )
    assert shadowproxy.service_port({"metadata": {"name": "x"}, "spec": {}}, None) == (
        None,
        "Service x has no port",
    )
