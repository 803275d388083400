"""Sample and invalid Hal9Migration manifests, shared by unit and integration tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "e2e" / "samples"
INVALID = ROOT / "tests" / "data" / "invalid-manifests.yaml"
API_VERSION = "migration.hal9.ai/v1alpha1"


def load_sample(name: str) -> dict[str, Any]:
    """The Hal9Migration in ``e2e/samples/<name>.yaml``, without its namespace (tests choose one)."""
    docs = yaml.safe_load_all((SAMPLES / f"{name}.yaml").read_text())
    manifest = dict(next(d for d in docs if d["kind"] == "Hal9Migration"))
    manifest["metadata"].pop("namespace", None)
    return manifest


def merge(base: Any, overlay: Any) -> Any:
    """Deep-merge ``overlay`` into a copy of ``base``: dicts merge, lists replace, None deletes."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return copy.deepcopy(overlay)
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


@dataclass(frozen=True)
class InvalidCase:
    name: str
    manifest: dict[str, Any]
    expect: str  # in the API server's rejection
    model: str  # in the operator's InvalidSpec message


def invalid_cases() -> list[InvalidCase]:
    base = load_sample("flat-to-hierarchical")
    cases = []
    for entry in yaml.safe_load(INVALID.read_text()):
        manifest = copy.deepcopy(base)
        manifest["metadata"] = {"name": f"invalid-{entry['name']}"}
        manifest["spec"] = merge(base["spec"], entry["spec"])
        cases.append(InvalidCase(entry["name"], manifest, entry["expect"], entry["model"]))
    return cases


def workloads(routes: bool = True) -> str:
    """The sample HAL9 Deployments, Services and (unless ``routes`` is False) route objects, without
    their Namespace, for ``kubectl apply -n``."""
    docs = [
        d
        for name in ("hal9-workloads.yaml", "hal9-routes.yaml")[: 2 if routes else 1]
        for d in yaml.safe_load_all((SAMPLES / name).read_text())
        if d["kind"] != "Namespace"
    ]
    for doc in docs:
        doc["metadata"].pop("namespace", None)
    return yaml.safe_dump_all(docs)


VALID = ROOT / "tests" / "data" / "valid-manifests.yaml"


def valid_cases() -> list[tuple[str, dict[str, Any]]]:
    """(name, manifest) for each spec that must be accepted."""
    return [
        (
            entry["name"],
            {
                "apiVersion": API_VERSION,
                "kind": "Hal9Migration",
                "metadata": {"name": entry["name"]},
                "spec": entry["spec"],
            },
        )
        for entry in yaml.safe_load(VALID.read_text())
    ]
