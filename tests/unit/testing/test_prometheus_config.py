"""The generated Prometheus config and the pod targets the harness writes for it.

Checked with Debian's own ``promtool`` (the same build that will run it) and with the labels
Kubernetes SD would give, so the relabelling is the one a real installation uses.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hal9_migration.testing.prometheus import build_config, file_sd_groups


def test_promtool_accepts_the_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool") or pytest.skip("promtool is not installed (Debian: prometheus)")
    targets = tmp_path / "pods.json"
    targets.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(build_config(targets)))
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pods_are_described_as_kubernetes_sd_describes_them() -> None:
    pods = [
        {
            "metadata": {
                "name": "hal9-flat-1",
                "namespace": "hal9",
                "uid": "u1",
                "labels": {"app": "hal9-flat", "hal9.ai/system": "flat"},
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8090"},
            },
            "spec": {"nodeName": "hal9-local"},
            "status": {
                "podIP": "127.0.1.7",
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        },
        {"metadata": {"name": "pending", "namespace": "hal9"}, "status": {"phase": "Pending"}},
    ]
    [group] = file_sd_groups(pods)
    assert group["targets"] == ["127.0.1.7"]
    labels = group["labels"]
    assert labels["__meta_kubernetes_namespace"] == "hal9"
    assert labels["__meta_kubernetes_pod_name"] == "hal9-flat-1"
    assert labels["__meta_kubernetes_pod_ip"] == "127.0.1.7"
    assert labels["__meta_kubernetes_pod_phase"] == "Running"
    assert labels["__meta_kubernetes_pod_ready"] == "true"
    assert labels["__meta_kubernetes_pod_label_app"] == "hal9-flat"
    assert labels["__meta_kubernetes_pod_label_hal9_ai_system"] == "flat"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert labels["__meta_kubernetes_pod_annotationpresent_prometheus_io_port"] == "true"
