"""The node agent's side of the API: its Node, pod bindings, status writes, reads, the watches (pods,
Services, EndpointSlices), and the loopback addresses it hands out as pod IPs.

Kept apart from ``nodeagent.py`` (which decides) so that file reads as the kubelet's logic. Calls go
through the official ``kubernetes`` client with ``_preload_content=False``: the agent works on plain
API dicts (what ``kubelet_env`` and ``kubelet_status`` take), and the client's model deserialization
is skipped (it also mis-reads the binding subresource's answer, a Status, as a Binding).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from . import kubelet_status as kst

NODE_NAME = "hal9-local"
HOST_IP = "127.0.0.1"
WATCH_SECONDS = 300  # the API server ends each watch after this; the agent resumes from its version

log = logging.getLogger("hal9.nodeagent")

Conditions = Callable[
    [str, Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]], str], list[dict[str, Any]]
]


class Api:
    def __init__(self, kubeconfig: Path) -> None:
        self.client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.discovery = kubernetes.client.DiscoveryV1Api(self.client)  # EndpointSlices

    def method(self, name: str) -> Any:
        """A CoreV1Api method by name, or else a DiscoveryV1Api one (``*_endpoint_slice*``)."""
        found = getattr(self.core, name, None)
        return found if found is not None else getattr(self.discovery, name)

    def call(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        response = self.method(method)(*args, _preload_content=False, **kwargs)
        data = response.data
        return dict(json.loads(data)) if data else {}

    def register_node(self, node: dict[str, Any], timeout: float = 60) -> None:
        """Create the Node (or take over an existing one of that name) and post its Ready status."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                try:
                    self.call("create_node", node)
                except ApiException as error:
                    if error.status != 409:
                        raise
                current = self.call("read_node", node["metadata"]["name"])
                current["metadata"].setdefault("labels", {}).update(node["metadata"]["labels"])
                current["status"] = {**current.get("status", {}), **node["status"]}
                self.call("replace_node_status", node["metadata"]["name"], current)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        """What a scheduler does: the binding subresource (uid precondition: this pod, not a namesake)."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        self.call("create_namespaced_pod_binding", name, namespace, body)

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._read("read_namespaced_secret", namespace, name)
        if found is None:
            return None
        # Go's string(bytes): any bytes; surrogateescape hands them to the process unchanged.
        return {
            key: base64.b64decode(value).decode("utf-8", errors="surrogateescape")
            for key, value in (found.get("data") or {}).items()
        }

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._read("read_namespaced_config_map", namespace, name)
        return None if found is None else dict(found.get("data") or {})

    def _read(self, method: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.call(method, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def update_pod_status(
        self, namespace: str, name: str, uid: str, fields: dict[str, Any], conditions: Conditions
    ) -> bool:
        """Replace the kubelet-owned status fields, keeping what others wrote (qosClass, the binding's
        PodScheduled, a DisruptionTarget); read-modify-write, retried on conflicts. False: pod gone."""
        for _ in range(20):
            try:
                pod = self.call("read_namespaced_pod", name, namespace)
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            if pod["metadata"]["uid"] != uid:
                return False
            status = pod.setdefault("status", {})
            status.update(fields)
            existing = status.get("conditions") or []
            status["conditions"] = conditions(
                fields["phase"], fields["containerStatuses"], existing, kst.rfc3339()
            )
            try:
                self.call("replace_namespaced_pod_status", name, namespace, pod)
                return True
            except ApiException as error:
                if error.status == 404:
                    return False
                if error.status != 409:
                    raise
        raise RuntimeError(f"pod {namespace}/{name}: status kept conflicting")

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """What a kubelet does once a deleted pod's containers are stopped: grace period 0."""
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.call("delete_namespaced_pod", name, namespace, body=body)
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    def list_and_watch(
        self,
        on_list: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[str, dict[str, Any]], None],
        method: str = "list_pod_for_all_namespaces",
    ) -> None:
        """Forever (in its own thread): list all pods, then watch from the list's resourceVersion;
        on 410 Gone (the version expired) or any error, list again. A re-list, not tight polling,
        is how informers recover too; ``on_list`` lets the caller notice deletions it missed.
        ``method``: another all-namespaces list (Services, EndpointSlices), named as ``method`` takes."""
        what = method.removeprefix("list_").removesuffix("_for_all_namespaces")
        while True:
            try:
                listing = self.call(method)
                on_list(listing.get("items") or [])
                version = str(listing["metadata"]["resourceVersion"])
                while True:
                    version = self.watch(version, on_event, method)
            except ApiException as error:
                if error.status != 410:
                    log.warning("%s watch failed (%s %s); listing again", what, error.status, error.reason)
                    time.sleep(1)
            except Exception as error:
                log.warning("%s watch failed (%s); listing again", what, error)
                time.sleep(1)

    def watch(
        self,
        version: str,
        emit: Callable[[str, dict[str, Any]], None],
        method: str = "list_pod_for_all_namespaces",
    ) -> str:
        """One watch of all pods (or what ``method`` lists) from ``version``; returns the version to
        resume from. An expired version raises ApiException(410): the caller lists again."""
        # Raw: the urllib3 response, read line by line as events arrive.
        response: Any = self.method(method)(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(10, WATCH_SECONDS + 30),
        )
        try:
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = str(obj["metadata"]["resourceVersion"])
                if event["type"] != "BOOKMARK":
                    emit(str(event["type"]), obj)
        finally:
            response.release_conn()
        return version


class IpPool:
    """Pod IPs on loopback, 127.0.1.1 to 127.0.254.254: every pod gets an address of its own it can
    bind to (Linux routes all of 127/8 to lo), and the API server accepts loopback pod IPs (it refuses
    them only in EndpointSlices). Handed out next-fit, so a released address is reused late. Services'
    virtual IPs come from 127.240.0.0/12 (``servicenet.VipPool``): the two ranges never meet."""

    SIZE = 254 * 254

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.cursor = 0

    @staticmethod
    def address(index: int) -> str:
        return f"127.0.{1 + index // 254}.{1 + index % 254}"

    def allocate(self, owner: str, preferred: str | None = None) -> str:
        if preferred and preferred.startswith("127.0.") and preferred not in self.owners:
            self.owners[preferred] = owner
            return preferred
        for step in range(self.SIZE):
            index = (self.cursor + step) % self.SIZE
            candidate = self.address(index)
            if candidate not in self.owners:
                self.owners[candidate] = owner
                self.cursor = index + 1
                return candidate
        raise RuntimeError("no free pod IP left on 127.0.1.0-127.0.254.255")

    def release(self, ip: str, owner: str) -> None:
        """Only the owner's release counts: an address handed on meanwhile stays with its new pod."""
        if self.owners.get(ip) == owner:
            del self.owners[ip]


def node_object(name: str) -> dict[str, Any]:
    """The Node a kubelet would register for this machine: Ready, its real CPUs and memory."""
    machine = platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    disk_kib = shutil.disk_usage("/").total // 1024
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{_memory_kib()}Ki",
        "pods": "110",
        "ephemeral-storage": f"{disk_kib}Ki",
    }
    now = kst.rfc3339()
    conditions = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "node agent has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "node agent has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "node agent has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "node agent is posting ready status"),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
            },
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for kind, status, reason, message in conditions
            ],
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "local processes (hal9 node agent)",
                "containerRuntimeVersion": "hal9-node-agent://0.1",
                "kubeletVersion": "hal9-node-agent",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    }


def _memory_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 1024 * 1024
