"""Repository invariants that keep the project importable and its CRD honest."""

from __future__ import annotations

import json
import re
import tomllib

from hal9_migration.crd import render_crd
from tests.support.manifests import ROOT

CRD_FILE = ROOT / "crds" / "hal9migrations.migration.hal9.ai.yaml"


def test_no_top_level_operator_package() -> None:
    # A package named `operator` would shadow the standard library's `operator` module.
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_committed_crd_matches_the_models() -> None:
    assert CRD_FILE.read_text() == render_crd(), "crds/ is stale: run `make crd` and commit the result"


def test_chart_ships_the_same_crd() -> None:
    chart_copy = ROOT / "charts" / "hal9-migration-operator" / "crds" / CRD_FILE.name
    assert chart_copy.read_text() == render_crd(), "the chart's CRD is stale: run `make crd`"


def test_the_image_runs_commands_the_package_installs() -> None:
    """The Dockerfile's entrypoint, and the kubectl plugin users run from the same image, are console
    scripts of the wheel it installs (a rename would otherwise surface only in a cluster)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert entrypoint[0] in scripts
    assert scripts["kubectl-hal9"] == "hal9_migration.kubectl.main:main"
    assert "USER 65532:65532" in dockerfile
