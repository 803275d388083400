"""Repository invariants that keep the project importable and its CRD honest."""

from __future__ import annotations

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
