"""The e2e scenario script, run the way a kind user runs it, against the session's cluster."""

from __future__ import annotations

import subprocess

from tests.integration.conftest import Cluster
from tests.support.manifests import ROOT


def test_e2e_run_script_passes(cluster: Cluster) -> None:
    # The script picks and deletes a namespace of its own.
    env = {**cluster.env, "PATH": f"{cluster.kubectl_path.rsplit('/', 1)[0]}:{cluster.env['PATH']}"}
    result = subprocess.run(
        ["bash", str(ROOT / "e2e" / "run.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "e2e: passed" in result.stdout
