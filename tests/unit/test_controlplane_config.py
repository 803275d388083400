"""Where the local control plane's binaries come from, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from hal9_migration.testing import controlplane


def test_kubebuilder_assets_win_over_the_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    monkeypatch.setattr(controlplane, "BUILD_SCRIPT", tmp_path / "absent.sh")  # would fail if consulted
    assert controlplane.binaries_dir() == tmp_path


def test_missing_binaries_are_named(tmp_path: Path) -> None:
    plane = controlplane.ControlPlane(workdir=tmp_path / "work", bindir=tmp_path)
    with pytest.raises(controlplane.ControlPlaneError, match="etcd, kube-apiserver not found"):
        plane.start()


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("", False), ("false", False)])
def test_existing_cluster_opt_in(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("HAL9_USE_EXISTING_CLUSTER", value)
    assert controlplane.use_existing_cluster() is expected
