"""The edge of the shadow proxy: observe its Deployment, Service and endpoints; make or remove them.

The decisions (when it runs, when traffic goes through it) are ``shadowproxy.plan``'s; the manifests
are ``shadowproxy.build_*``. Here is only the reading and the writing.
"""

from __future__ import annotations

import os

from kubernetes.client.exceptions import ApiException

from . import kube, shadowproxy
from .models import Hal9MigrationSpec
from .shadowproxy import HASH_ANNOTATION, ProxyAction, ProxyView

# The image the proxy runs when phases.shadow.proxy.image is unset: the operator's own (the chart
# sets this variable to the image it runs).
IMAGE_ENV = "HAL9_OPERATOR_IMAGE"
DEFAULT_IMAGE = "hal9-migration-operator:0.1.0"
_KINDS = ("Deployment", "Service")


def observe(namespace: str, name: str, uid: str) -> ProxyView:
    proxy = shadowproxy.proxy_name(name)
    found = {kind: kube.read_owned(kind, namespace, proxy) for kind in _KINDS}
    strangers = [
        f"{kind} {namespace}/{proxy}"
        for kind, obj in found.items()
        if obj is not None and not _owned_by(obj, uid)
    ]
    if strangers:
        problem = f"{' and '.join(strangers)} exists and is not this migration's; rename or remove it"
        return ProxyView(exists=False, ready=False, problem=problem)
    exists = any(obj is not None for obj in found.values())
    deployment = found["Deployment"]
    # Available (ready for minReadySeconds) and an endpoint a data plane would send to.
    available = deployment is not None and (deployment.get("status") or {}).get("availableReplicas", 0) > 0
    ready = available and found["Service"] is not None and kube.ready_endpoints(namespace, proxy) > 0
    return ProxyView(exists=exists, ready=ready)


def act(namespace: str, name: str, uid: str, spec: Hal9MigrationSpec, action: ProxyAction) -> str:
    """Carry out ``action``; returns why the proxy cannot be made ("" when done)."""
    proxy = shadowproxy.proxy_name(name)
    if action == "delete":
        for kind in ("Service", "Deployment"):  # the Service first: nothing is sent to pods going away
            kube.delete_owned(kind, namespace, proxy)
        return ""
    wanted = spec.phases.shadow.proxy.port
    flat = kube.read_owned("Service", namespace, spec.flat.service)
    hierarchical = kube.read_owned("Service", namespace, spec.hierarchical.service)
    flat_port, flat_problem = shadowproxy.service_port(flat, wanted)
    hierarchical_port, hierarchical_problem = shadowproxy.service_port(hierarchical, wanted)
    if flat_port is None or hierarchical_port is None or flat is None:
        return flat_problem or hierarchical_problem
    manifests = [
        shadowproxy.build_deployment(
            namespace=namespace,
            migration=name,
            uid=uid,
            spec=spec,
            image=os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE,
            flat_port=flat_port,
            hierarchical_port=hierarchical_port,
        ),
        shadowproxy.build_service(
            namespace=namespace, migration=name, uid=uid, flat_ports=flat["spec"]["ports"]
        ),
    ]
    for manifest in manifests:
        try:
            kube.apply_owned(manifest, HASH_ANNOTATION)
        except kube.Foreign as foreign:
            return str(foreign)
        except ApiException as error:
            if error.status in (400, 403, 422):
                kind = manifest["kind"]
                return f"the API server refused {kind} {namespace}/{proxy}: {kube.refusal(error)}"
            raise
    return ""


def _owned_by(obj: dict[str, object], uid: str) -> bool:
    metadata = obj.get("metadata")
    refs = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    return any(isinstance(r, dict) and r.get("uid") == uid for r in refs or [])
