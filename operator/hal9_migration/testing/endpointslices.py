"""EndpointSlices for the Services of loopback pods, as Kubernetes' EndpointSlice controller would
write them if it could (test and demo code).

The node agent gives every pod its own loopback address (127.0.x.y). Kubernetes' EndpointSlice
controller would write those into IPv4 slices, which the API server refuses for loopback addresses; it
accepts them in slices of ``addressType: FQDN`` (with a deprecation warning), and Envoy Gateway routes
to those. So that controller does not run here, and this one, running inside the node agent (which
already plays the node's kubelet and scheduler), plays it for two kinds of Services:

- ordinary Services with a ``spec.selector`` (what the operator creates, e.g. in front of its shadow
  proxy pod): their pods are the ones the selector selects, as in any cluster;
- selector-less Services carrying an annotation instead (the HAL9 stand-ins': on a real cluster
  their names point at the real systems' pods, so the samples cannot give them a selector)::

      hal9.ai/endpoints-selector: app=hal9-hierarchical

  The annotation takes equality terms only (``k=v``, ``k==v``, ``k!=v``, comma-separated), which is
  all a Service's selector can say anyway. When a Service has both, the annotation wins.

One FQDN slice per such Service, named ``<service>-fqdn``, labelled ``kubernetes.io/service-name``
(routers and the node agent's service proxy find slices by it) and
``endpointslice.kubernetes.io/managed-by: node-agent.hal9.ai`` (so a real EndpointSlice controller
leaves it alone), owned by the Service (the garbage collector deletes it with the Service), listing the
Ready, non-terminating selected pods' IPs. Ports carry the Service ports' names (Envoy Gateway and the
service proxy match on them) and the resolved target port numbers (a number, or a named container port
looked up in the selected pods). A Deployment rollout (``kubectl set env ...``) thus moves the slice to
the new pod as soon as it is Ready, and drops the old one as soon as it is deleted.

Level-triggered: any pod or Service event marks its namespace, and the worker reconciles the whole
namespace (list Services, pods, our slices; create, replace or delete).

The functions above ``EndpointSliceController`` are pure (plain API dicts) and unit-tested.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from .nodeapi import Api

SELECTOR_ANNOTATION = "hal9.ai/endpoints-selector"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "node-agent.hal9.ai"
RETRY_SECONDS = 1.0

log = logging.getLogger("hal9.endpointslices")

Selector = tuple[tuple[str, str, bool], ...]  # (key, value, equal)


class SelectorError(ValueError):
    pass


def parse_selector(text: str) -> Selector:
    """``app=hal9,tier!=cache`` -> ((app, hal9, True), (tier, cache, False)). Raises SelectorError."""
    terms = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue
        # "!=" and "==" before "=", which both contain.
        found = next((op for op in (("!=", False), ("==", True), ("=", True)) if op[0] in term), None)
        key, _, value = term.partition(found[0]) if found else ("", "", "")
        if found is None or not key.strip():
            raise SelectorError(f"{term!r} is not an equality term (key=value or key!=value)")
        terms.append((key.strip(), value.strip(), found[1]))
    if not terms:
        raise SelectorError("the selector is empty; it would select every pod")
    return tuple(terms)


def selects(selector: Selector, labels: Mapping[str, str]) -> bool:
    return all((labels.get(key) == value) == equal for key, value, equal in selector)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Ready and not terminating, with an IP: what the EndpointSlice controller lists as ready."""
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def slice_name(service: str) -> str:
    return f"{service}-fqdn"


def _target_port(port: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> int | None:
    """A Service port's target as a number: itself, the port when unset, or looked up by name in the
    pods' container ports (the first pod that declares it)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for pod in pods:
        for container in pod.get("spec", {}).get("containers") or []:
            for declared in container.get("ports") or []:
                if declared.get("name") == target:
                    return int(declared["containerPort"])
    return None


def managed(service: Mapping[str, Any]) -> bool:
    """Whether this controller keeps a slice for ``service``: it has the annotation or a selector."""
    annotations = service.get("metadata", {}).get("annotations") or {}
    return SELECTOR_ANNOTATION in annotations or bool(service.get("spec", {}).get("selector"))


def service_selector(service: Mapping[str, Any]) -> Selector | None:
    """What selects the Service's pods: its annotation, else its ``spec.selector`` (every term an
    equality). None when it has neither (an empty selector selects nothing: Kubernetes manages no
    endpoints for it either) or its annotation is unusable (logged)."""
    meta = service.get("metadata", {})
    text = (meta.get("annotations") or {}).get(SELECTOR_ANNOTATION)
    if text is None:
        selector = service.get("spec", {}).get("selector") or {}
        return tuple((str(key), str(value), True) for key, value in sorted(selector.items())) or None
    try:
        return parse_selector(text)
    except SelectorError as error:
        log.warning(
            "service %s/%s: %s %r: %s",
            meta.get("namespace"),
            meta.get("name"),
            SELECTOR_ANNOTATION,
            text,
            error,
        )
        return None


def build_endpoint_slice(
    service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The FQDN EndpointSlice for ``service`` from the pods of its namespace; None when the Service
    selects no pods (no selector, no or an unusable annotation). Endpoints are sorted by pod name, so
    an unchanged set of pods gives an equal slice."""
    meta = service.get("metadata", {})
    selector = service_selector(service)
    if selector is None:
        return None
    ready = sorted(
        (p for p in pods if pod_ready(p) and selects(selector, p.get("metadata", {}).get("labels") or {})),
        key=lambda p: str(p["metadata"]["name"]),
    )
    ports = []
    for port in service.get("spec", {}).get("ports") or []:
        number = _target_port(port, ready)
        if number is None:
            continue  # a named target no selected pod declares: nothing to route to yet
        entry: dict[str, Any] = {
            "name": port.get("name", ""),
            "protocol": port.get("protocol", "TCP"),
            "port": number,
        }
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        ports.append(entry)
    endpoints = [
        {
            "addresses": [p["status"]["podIP"]],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            **({"nodeName": p["spec"]["nodeName"]} if p.get("spec", {}).get("nodeName") else {}),
            "targetRef": {
                "kind": "Pod",
                "namespace": p["metadata"]["namespace"],
                "name": p["metadata"]["name"],
                "uid": p["metadata"]["uid"],
            },
        }
        for p in ready
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": "FQDN",
        "endpoints": endpoints,
        "ports": ports,
    }


def desired_slices(
    services: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Slice name -> slice, for every Service among ``services`` (one namespace) that selects pods."""
    pods = list(pods)
    built = (build_endpoint_slice(service, pods) for service in services)
    return {s["metadata"]["name"]: s for s in built if s is not None}


def differs(have: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """Whether the stored slice must be replaced: the fields this controller sets, compared."""
    labels = have.get("metadata", {}).get("labels") or {}
    owners = have.get("metadata", {}).get("ownerReferences") or []
    return (
        have.get("endpoints") or [],
        have.get("ports") or [],
        {k: labels.get(k) for k in want["metadata"]["labels"]},
        [o.get("uid") for o in owners],
    ) != (
        want["endpoints"],
        want["ports"],
        want["metadata"]["labels"],
        [o["uid"] for o in want["metadata"]["ownerReferences"]],
    )


class EndpointSliceController:
    """Keeps the FQDN slices of Services with a selector or the annotation, in every namespace
    (started by the node agent).

    Two watch threads (pods, Services) only mark namespaces; one worker thread reconciles them, so
    writes for a namespace never race each other. A failed reconcile is retried after a second.
    """

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api = Api(kubeconfig)
        self._dirty: set[str] = set()
        self._changed = threading.Condition()

    def start(self) -> None:
        for method in ("list_pod_for_all_namespaces", "list_service_for_all_namespaces"):
            threading.Thread(
                target=Api(self.kubeconfig).list_and_watch,
                args=(self._on_list, self._on_event, method),
                name=f"slices-{method}",
                daemon=True,
            ).start()
        threading.Thread(target=self._work, name="slices-worker", daemon=True).start()

    def mark(self, *namespaces: str) -> None:
        with self._changed:
            self._dirty.update(namespaces)
            self._changed.notify()

    def _on_list(self, items: list[dict[str, Any]]) -> None:
        self.mark(*{i["metadata"]["namespace"] for i in items})

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.mark(obj["metadata"]["namespace"])

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._dirty:
                    self._changed.wait()
                namespaces, self._dirty = self._dirty, set()
            for namespace in sorted(namespaces):
                try:
                    self.reconcile(namespace)
                except Exception:
                    log.exception("endpoint slices of namespace %s: reconcile failed; retrying", namespace)
                    threading.Timer(RETRY_SECONDS, self.mark, args=(namespace,)).start()

    def reconcile(self, namespace: str) -> None:
        services = self.api.call("list_namespaced_service", namespace).get("items") or []
        if not any(managed(s) for s in services):
            wanted: dict[str, dict[str, Any]] = {}
        else:
            pods = self.api.call("list_namespaced_pod", namespace).get("items") or []
            wanted = desired_slices(services, pods)
        listed = self.api.call(
            "list_namespaced_endpoint_slice", namespace, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}"
        )
        existing = {s["metadata"]["name"]: s for s in listed.get("items") or []}
        for name, want in wanted.items():
            have = existing.pop(name, None)
            try:
                if have is None:
                    self.api.call("create_namespaced_endpoint_slice", namespace, want)
                elif differs(have, want):
                    want["metadata"]["resourceVersion"] = have["metadata"]["resourceVersion"]
                    self.api.call("replace_namespaced_endpoint_slice", name, namespace, want)
                else:
                    continue
            except ApiException as error:
                if error.status in (404, 409):  # raced with another write or the Service's deletion
                    self.mark(namespace)
                    continue
                raise
            addresses = [e["addresses"][0] for e in want["endpoints"]]
            log.info("endpoint slice %s/%s: %s", namespace, name, ", ".join(addresses) or "no ready pods")
        for name in existing:
            try:
                self.api.call("delete_namespaced_endpoint_slice", name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
            log.info(
                "endpoint slice %s/%s: deleted (its Service is gone or selects no pods)", namespace, name
            )
