"""`hal9-migration local-cluster up` (the demo's control plane) leaves nothing behind."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hal9_migration.testing import controlplane
from tests.integration.conftest import wait_until


def processes_using(directory: Path) -> list[int]:
    """PIDs whose command line mentions ``directory`` (etcd's data dir, the API server's certs)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(directory) in cmdline and "local-cluster" not in cmdline:
                found.append(int(proc.name))
    return found


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_no_control_plane_process_outlives_its_parent(tmp_path: Path, how: signal.Signals) -> None:
    if controlplane.use_existing_cluster():
        pytest.skip("tests the local control plane, which HAL9_USE_EXISTING_CLUSTER replaces")
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
        # etcd, kube-apiserver, kube-controller-manager, the node agent
        assert len(processes_using(workdir)) == 4
        parent.send_signal(how)
        parent.wait(timeout=30)
        # Generous: kube-apiserver shuts down gracefully, slowly on a loaded machine.
        wait_until(lambda: not processes_using(workdir), 90, "etcd and kube-apiserver to exit")
    finally:
        parent.kill()
        parent.wait()
