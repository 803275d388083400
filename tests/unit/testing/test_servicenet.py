"""Service names for pods, without a cluster: virtual IPs, the hosts file, where a Service port's
connections may go, and the bind of a pod's hosts file over /etc/hosts.

A process in a pod must resolve ``<svc>.<ns>.svc.cluster.local`` (and the shorter forms the cluster's
DNS search path allows) to an address that is the Service's alone and stays put, and see changes to
the file while it runs; nothing outside the pod may see it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hal9_migration.testing import podprocess
from hal9_migration.testing.nodeapi import IpPool
from hal9_migration.testing.servicenet import (
    ServiceName,
    VipPool,
    endpoint_targets,
    has_vip,
    render_hosts,
    tcp_ports,
    write_in_place,
)


def test_virtual_ips_cover_127_240_0_0_12_and_never_meet_pod_ips() -> None:
    assert VipPool.address(0) == "127.240.0.1"
    assert VipPool.address(253) == "127.240.0.254"
    assert VipPool.address(254) == "127.240.1.1"
    assert VipPool.address(VipPool.SIZE - 1) == "127.255.255.254"
    pool = VipPool()
    addresses = {pool.allocate(f"uid-{n}") for n in range(500)}
    assert len(addresses) == 500
    assert all(a.startswith("127.") and 240 <= int(a.split(".")[1]) <= 255 for a in addresses)
    assert not addresses & {IpPool.address(i) for i in range(IpPool.SIZE)}


def test_a_service_keeps_its_virtual_ip_for_its_life_and_across_an_agent_restart() -> None:
    pool = VipPool()
    first = pool.allocate("svc-a")
    assert pool.allocate("svc-a") == first
    assert VipPool().allocate("svc-a") == first  # the hash of the uid, not the order of arrival
    pool.release("svc-a")
    assert "svc-a" not in pool.addresses
    assert first not in pool.owners


def test_a_taken_address_moves_to_the_next_free_one() -> None:
    class Tiny(VipPool):
        SIZE = 2

    pool = Tiny()
    assert {pool.allocate("a"), pool.allocate("b")} == {"127.240.0.1", "127.240.0.2"}
    with pytest.raises(RuntimeError, match="no free virtual IP"):
        pool.allocate("c")
    pool.release("a")
    assert pool.allocate("c") in {"127.240.0.1", "127.240.0.2"}


def pod(namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "client-7d9f", "namespace": namespace}, "spec": spec}


SERVICES = [
    ServiceName("shop", "flat", "127.240.0.9"),
    ServiceName("other", "flat", "127.241.3.4"),
    ServiceName("shop", "api", "127.250.1.1"),
]


def test_the_hosts_file_is_the_kubelets_plus_a_line_per_service() -> None:
    text = render_hosts(pod(), "127.0.1.7", SERVICES, machine_hostname="vm")
    assert text == (
        "# Kubernetes-managed hosts file (the hal9 node agent's: servicenet.py).\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        "127.0.1.7\tclient-7d9f\tvm\n"
        "\n"
        "# Services: their virtual IPs on the node agent's service proxy.\n"
        "127.241.3.4\tflat.other.svc.cluster.local\tflat.other.svc\tflat.other\n"
        "127.250.1.1\tapi.shop.svc.cluster.local\tapi.shop.svc\tapi.shop\tapi\n"
        "127.240.0.9\tflat.shop.svc.cluster.local\tflat.shop.svc\tflat.shop\tflat\n"
    )


def test_short_names_are_for_the_pods_own_namespace_only() -> None:
    text = render_hosts(pod("other"), "127.0.1.7", SERVICES)
    lines = {line.split("\t")[0]: line.split("\t")[1:] for line in text.splitlines() if "\t" in line}
    assert lines["127.241.3.4"][-1] == "flat"
    assert lines["127.240.0.9"][-1] == "flat.shop"


def test_hostname_subdomain_and_host_aliases_as_the_kubelet_writes_them() -> None:
    spec = {
        "hostname": "worker-0",
        "subdomain": "workers",
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["db", "db.local"]}],
    }
    text = render_hosts(pod(**spec), "127.0.1.7", [], machine_hostname="worker-0")
    assert "127.0.1.7\tworker-0.workers.shop.svc.cluster.local\tworker-0\n" in text
    assert text.endswith("\n# Entries added by HostAliases.\n10.1.2.3\tdb\tdb.local\n")
    assert "Services" not in text


def test_only_services_with_a_cluster_ip_get_one_and_only_tcp_ports_are_relayed() -> None:
    assert has_vip({"spec": {"type": "ClusterIP", "clusterIP": "10.0.0.7"}})
    assert has_vip({"spec": {}})
    assert not has_vip({"spec": {"clusterIP": "None"}})
    assert not has_vip({"spec": {"type": "ExternalName", "externalName": "example.com"}})
    ports = [
        {"name": "web", "port": 80, "targetPort": "http"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"port": 9000},
    ]
    assert tcp_ports({"spec": {"ports": ports}}) == [("web", 80), ("", 9000)]


def slice_of(name: str, port: int | None, *endpoints: tuple[str, bool | None], port_name: str = "web") -> Any:
    return {
        "metadata": {"name": name, "namespace": "shop"},
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [address], "conditions": {} if ready is None else {"ready": ready}}
            for address, ready in endpoints
        ],
    }


def test_connections_go_to_ready_endpoints_at_the_slice_port_of_the_same_name() -> None:
    slices = [
        slice_of("flat-b", 8091, ("127.0.1.3", True), ("127.0.1.1", True)),
        slice_of("flat-a", 8090, ("127.0.1.1", True), ("127.0.1.2", False), ("127.0.1.4", None)),
        slice_of("flat-c", 7000, ("127.0.1.5", True), port_name="metrics"),
        slice_of("flat-d", None, ("127.0.1.6", True)),
    ]
    assert endpoint_targets(slices, "web") == [
        ("127.0.1.1", 8090),
        ("127.0.1.4", 8090),  # ready unset: ready
        ("127.0.1.3", 8091),
        ("127.0.1.1", 8091),
    ]
    assert endpoint_targets(slices, "metrics") == [("127.0.1.5", 7000)]
    assert endpoint_targets(slices, "admin") == []
    duplicate = slice_of("flat-e", 8090, ("127.0.1.1", True))
    assert endpoint_targets([*slices[1:2], duplicate], "web") == [("127.0.1.1", 8090), ("127.0.1.4", 8090)]


def test_the_hosts_file_is_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    assert write_in_place(path, "127.0.0.1\tlocalhost\n127.240.0.9\tflat\n")
    inode = path.stat().st_ino
    assert not write_in_place(path, "127.0.0.1\tlocalhost\n127.240.0.9\tflat\n")
    assert write_in_place(path, "127.0.0.1\tlocalhost\n")  # shorter: the old tail must go
    assert path.read_text() == "127.0.0.1\tlocalhost\n"
    assert path.stat().st_ino == inode  # what a bind mount of it keeps showing


# --- the bind over /etc/hosts, for real -----------------------------------------------------------

MOUNT_NAMESPACE_PROBLEM = podprocess.private_hosts_error()
needs_mount_namespace = pytest.mark.skipif(
    MOUNT_NAMESPACE_PROBLEM is not None,
    reason=f"no private mount namespace here ({MOUNT_NAMESPACE_PROBLEM}): it needs root",
)

# Resolves a name until it maps to the wanted address (or 10 s pass), printing each new answer.
RESOLVE_UNTIL = """
import socket, sys, time
name, wanted = sys.argv[1], sys.argv[2]
seen = None
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        found = socket.gethostbyname(name)
    except OSError as error:
        found = f"error: {error}"
    if found != seen:
        print(found, flush=True)
        seen = found
    if found == wanted:
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
"""


def run(argv: list[str], tmp_path: Path, hosts: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"{name}.log"
    proc, _ = podprocess.spawn(
        argv, env={"PATH": os.environ["PATH"]}, cwd=tmp_path, log_path=log, hosts_file=hosts
    )
    return proc, log


@needs_mount_namespace
def test_a_pod_process_sees_its_hosts_file_as_etc_hosts_and_nobody_else_does(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    write_in_place(hosts, render_hosts(pod(), "127.0.1.7", SERVICES))
    machine = Path("/etc/hosts").read_bytes()
    proc, log = run(["cat", "/etc/hosts"], tmp_path, hosts, "cat")
    assert proc.wait(10) == 0
    assert log.read_bytes() == hosts.read_bytes()
    assert Path("/etc/hosts").read_bytes() == machine
    assert b"flat.shop.svc.cluster.local" not in machine


@needs_mount_namespace
def test_a_running_pod_process_resolves_names_afresh_after_a_rewrite(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    write_in_place(hosts, render_hosts(pod(), "127.0.1.7", SERVICES))
    name = "flat.shop.svc.cluster.local"
    proc, log = run([sys.executable, "-c", RESOLVE_UNTIL, name, "127.240.0.77"], tmp_path, hosts, "resolve")
    deadline = time.monotonic() + 10
    while "127.240.0.9" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    moved = [ServiceName("shop", "flat", "127.240.0.77")]
    write_in_place(hosts, render_hosts(pod(), "127.0.1.7", moved))
    assert proc.wait(15) == 0, log.read_text()
    assert log.read_text().splitlines() == ["127.240.0.9", "127.240.0.77"]
