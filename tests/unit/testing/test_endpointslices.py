"""The FQDN EndpointSlice the node agent keeps for a Service with a selector, or an annotated,
selector-less one (pure part).

Envoy Gateway and the node agent's service proxy route a Service's traffic to exactly what this slice
lists, so it must list the Ready selected pods and nothing else, with the Service's port names and the
pods' port numbers.
"""

from __future__ import annotations

from typing import Any

import pytest

from hal9_migration.testing import endpointslices as es
from hal9_migration.testing.standins import build_standin_deployment, build_standin_service


def pod(
    name: str, ip: str, *, app: str = "hal9-hierarchical", ready: bool = True, **meta: Any
) -> dict[str, Any]:
    template = build_standin_deployment("ns", "hierarchical")["spec"]["template"]
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": {**template["metadata"]["labels"], "app": app},
            **meta,
        },
        "spec": {**template["spec"], "nodeName": "hal9-local"},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def service(**annotations: str) -> dict[str, Any]:
    svc = build_standin_service("ns", "hierarchical")
    svc["metadata"]["uid"] = "svc-uid"
    if annotations:
        svc["metadata"]["annotations"] = annotations
    return svc


def test_the_slice_lists_ready_selected_pods_with_the_services_port_names() -> None:
    pods = [
        pod("b", "127.0.1.2"),
        pod("a", "127.0.1.1"),
        pod("unready", "127.0.1.3", ready=False),
        pod("terminating", "127.0.1.4", deletionTimestamp="2026-11-27T10:00:00Z"),
        pod("flat", "127.0.1.5", app="hal9-flat"),
    ]
    built = es.build_endpoint_slice(service(), pods)
    assert built is not None
    assert built["addressType"] == "FQDN"
    assert [e["addresses"] for e in built["endpoints"]] == [["127.0.1.1"], ["127.0.1.2"]]
    assert built["endpoints"][0]["targetRef"] == {
        "kind": "Pod",
        "namespace": "ns",
        "name": "a",
        "uid": "uid-a",
    }
    assert built["ports"] == [{"name": "http", "protocol": "TCP", "port": 8090}]
    assert built["metadata"]["name"] == "hal9-hierarchical-fqdn"
    assert built["metadata"]["labels"] == {
        "kubernetes.io/service-name": "hal9-hierarchical",
        "endpointslice.kubernetes.io/managed-by": "node-agent.hal9.ai",
    }
    assert built["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"


def test_a_numeric_target_port_needs_no_pod_and_no_ready_pod_means_no_endpoints() -> None:
    svc = service(**{es.SELECTOR_ANNOTATION: "app=hal9-hierarchical"})
    svc["spec"]["ports"] = [{"name": "web", "port": 80, "targetPort": 9000}, {"name": "admin", "port": 81}]
    built = es.build_endpoint_slice(svc, [pod("a", "127.0.1.1", ready=False)])
    assert built is not None
    assert built["endpoints"] == []
    assert built["ports"] == [
        {"name": "web", "protocol": "TCP", "port": 9000},
        {"name": "admin", "protocol": "TCP", "port": 81},
    ]


def test_services_without_the_annotation_or_with_a_bad_one_get_no_slice() -> None:
    plain = service()
    plain["metadata"].pop("annotations")
    assert es.build_endpoint_slice(plain, [pod("a", "127.0.1.1")]) is None
    assert es.build_endpoint_slice(service(**{es.SELECTOR_ANNOTATION: "app in (x)"}), []) is None
    assert list(es.desired_slices([plain, service()], [pod("a", "127.0.1.1")])) == ["hal9-hierarchical-fqdn"]


@pytest.mark.parametrize(
    ("text", "labels", "selected"),
    [
        ("app=x", {"app": "x"}, True),
        ("app==x, tier=web", {"app": "x", "tier": "web"}, True),
        ("app=x,tier=web", {"app": "x"}, False),
        ("app=x,tier!=cache", {"app": "x", "tier": "web"}, True),
        ("app=x,tier!=cache", {"app": "x", "tier": "cache"}, False),
        ("tier!=cache", {}, True),
    ],
)
def test_selector_terms(text: str, labels: dict[str, str], selected: bool) -> None:
    assert es.selects(es.parse_selector(text), labels) is selected


@pytest.mark.parametrize("text", ["", " , ", "app", "=x", "app in (a,b)"])
def test_selectors_that_are_not_equality_terms_are_refused(text: str) -> None:
    with pytest.raises(es.SelectorError):
        es.parse_selector(text)


def test_a_stored_slice_is_replaced_only_when_what_we_set_differs() -> None:
    want = es.build_endpoint_slice(service(), [pod("a", "127.0.1.1")])
    assert want is not None
    stored = {**want, "metadata": {**want["metadata"], "resourceVersion": "7", "generation": 1}}
    assert not es.differs(stored, want)
    moved = es.build_endpoint_slice(service(), [pod("b", "127.0.1.9")])
    assert moved is not None
    assert es.differs(stored, moved)


def selector_service(selector: dict[str, str] | None) -> dict[str, Any]:
    """An ordinary Service: ``spec.selector``, no annotation; port 80 to the named container port."""
    svc = service()
    svc["metadata"].pop("annotations")
    svc["spec"] = {"ports": [{"name": "web", "port": 80, "targetPort": "http"}]}
    if selector is not None:
        svc["spec"]["selector"] = selector
    return svc


def test_a_service_with_a_spec_selector_gets_the_same_slice_as_an_annotated_one() -> None:
    pods = [
        pod("a", "127.0.1.1"),
        pod("flat", "127.0.1.5", app="hal9-flat"),
        pod("b", "127.0.1.2", ready=False),
    ]
    svc = selector_service({"app": "hal9-hierarchical", "hal9.ai/system": "hierarchical"})
    assert es.managed(svc)
    built = es.build_endpoint_slice(svc, pods)
    assert built is not None
    assert [e["addresses"] for e in built["endpoints"]] == [["127.0.1.1"]]
    assert built["ports"] == [{"name": "web", "protocol": "TCP", "port": 8090}]  # "http", looked up
    assert built["metadata"]["labels"][es.SERVICE_NAME_LABEL] == "hal9-hierarchical"
    # Every term must match, as in a Service's selector.
    narrower = selector_service({"app": "hal9-hierarchical", "tier": "web"})
    narrowed = es.build_endpoint_slice(narrower, pods)
    assert narrowed is not None
    assert narrowed["endpoints"] == []


def test_an_empty_or_missing_selector_manages_no_slice_and_the_annotation_wins_over_a_selector() -> None:
    for svc in (selector_service(None), selector_service({})):
        assert not es.managed(svc)
        assert es.build_endpoint_slice(svc, [pod("a", "127.0.1.1")]) is None
    both = selector_service({"app": "nothing-has-this"})
    both["metadata"]["annotations"] = {es.SELECTOR_ANNOTATION: "app=hal9-hierarchical"}
    built = es.build_endpoint_slice(both, [pod("a", "127.0.1.1")])
    assert built is not None
    assert [e["addresses"] for e in built["endpoints"]] == [["127.0.1.1"]]
