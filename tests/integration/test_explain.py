"""``kubectl explain`` against the real API server shows a description for every Hal9Migration field.

The API server publishes the CRD's schema as OpenAPI v3 and kubectl renders it, so this checks what a
user really reads, not the YAML we committed: ``--recursive`` lists every field (but no descriptions),
and the plain form on each object lists each child with its description, ``<no description>`` when
there is none, and the object's own, ``<empty>`` when there is none.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hal9_migration.crd import build_crd
from tests.integration.conftest import Cluster, wait_until

RESOURCE = "hal9migration"
BLANKS = ("<empty>", "<no description>")
FIELD_LINE = re.compile(r"^(?P<indent> *)(?P<name>[A-Za-z0-9]+)\t<(?P<type>[^>]+)>")


def explain(cluster: Cluster, path: str, *flags: str) -> str:
    return cluster.kubectl("explain", path, *flags).stdout


def recursive_fields(text: str) -> dict[str, str]:
    """Every field path (``spec.phases.canary.steps``) in ``--recursive`` output, with its type."""
    fields: dict[str, str] = {}
    parents: list[str] = []
    for line in text.split("FIELDS:\n", 1)[1].splitlines():
        match = FIELD_LINE.match(line)
        if not match:
            continue  # an enum: line, or a blank
        depth = len(match["indent"]) // 2 - 1
        parents = [*parents[:depth], match["name"]]
        fields[".".join(parents)] = match["type"]
    return fields


def described_children(text: str) -> dict[str, str]:
    """Each child listed under FIELDS: in plain (non-recursive) output, with its description."""
    children: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("FIELDS:\n", 1)[1].splitlines():
        match = FIELD_LINE.match(line)
        if match and len(match["indent"]) == 2:
            current = children.setdefault(match["name"], [])
        elif current is not None and line.startswith("    "):
            current.append(line.strip())
    return {name: " ".join(" ".join(lines).split()) for name, lines in children.items()}


def own_description(text: str) -> str:
    section = text.split("DESCRIPTION:\n", 1)[1].split("FIELDS:\n", 1)[0]
    return " ".join(section.split())


def schema_descriptions(node: dict[str, Any], path: str = "") -> dict[str, str]:
    """Field path (as kubectl spells it: no list or map markers) to the CRD's description."""
    found: dict[str, str] = {}
    for name, prop in node.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        found[here] = " ".join(prop.get("description", "").split())
        found.update(schema_descriptions(prop, here))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found.update(schema_descriptions(node[key], path))
    return found


def test_kubectl_explain_shows_no_blank_field(cluster: Cluster) -> None:
    # The API server publishes a new CRD's OpenAPI a moment after it is Established.
    wait_until(
        lambda: "FIELDS:" in cluster.kubectl("explain", f"{RESOURCE}.spec", check=False).stdout,
        60,
        "the Hal9Migration schema to be published",
    )
    fields = recursive_fields(explain(cluster, RESOURCE, "--recursive"))
    ours = {path: kind for path, kind in fields.items() if path.split(".")[0] in ("spec", "status")}
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    expected = schema_descriptions(schema)
    # Every field of the CRD reaches the user, and kubectl shows no field the models do not have.
    assert set(ours) == {path for path in expected if path.split(".")[0] in ("spec", "status")}
    assert len(ours) > 200

    objects = [""] + [path for path in ours if any(other.startswith(f"{path}.") for other in ours)]
    # One plain explain per object (about 50), four at a time: a few seconds.
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = pool.map(lambda path: explain(cluster, f"{RESOURCE}.{path}".rstrip(".")), objects)
        pages = dict(zip(objects, found, strict=True))

    blanks = []
    for parent, page in pages.items():
        if any(blank in own_description(page) for blank in BLANKS) or not own_description(page):
            blanks.append(parent or RESOURCE)
        for name, description in described_children(page).items():
            path = f"{parent}.{name}" if parent else name
            if not description or any(blank in description for blank in BLANKS):
                blanks.append(path)
            elif path in ours:
                # What the user reads is the models' text, as kubectl re-wraps it.
                assert description == expected[path], path
    assert not blanks, "kubectl explain shows no description for:\n" + "\n".join(blanks)
    # Every field was seen as the child of an object page, so none escaped the check above.
    seen = {f"{p}.{n}" if p else n for p, page in pages.items() for n in described_children(page)}
    assert set(ours) <= seen
    assert {"apiVersion", "kind", "metadata"} <= seen


def test_a_leaf_field_reads_with_its_unit_and_default(cluster: Cluster) -> None:
    # What a user choosing a value sees: what the field is, its unit and its default.
    page = explain(cluster, f"{RESOURCE}.spec.phases.canary.maxP99Ms")
    assert "FIELD: maxP99Ms <number>" in page
    description = own_description(page)
    assert "milliseconds" in description and description.endswith("Default: 100.")
