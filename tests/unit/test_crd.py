"""The generated schema is structural: what the API server accepts (checked for real in integration)."""

from __future__ import annotations

from typing import Any

from hal9_migration.crd import build_crd

FORBIDDEN = {"$ref", "anyOf", "oneOf", "allOf", "patternProperties", "title", "$defs", "const"}


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            if key not in ("default", "enum"):
                found.extend(walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(walk(value, f"{path}[{i}]"))
    return found


def schema() -> dict[str, Any]:
    return dict(build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_no_keywords_a_structural_schema_forbids() -> None:
    for path, node in walk(schema()):
        assert not FORBIDDEN & set(node), f"{path} has {FORBIDDEN & set(node)}"


def test_every_property_has_a_type_or_preserves_unknown_fields() -> None:
    for path, node in walk(schema()):
        for name, prop in node.get("properties", {}).items():
            assert "type" in prop or prop.get("x-kubernetes-preserve-unknown-fields"), f"{path}.{name}"


def test_strings_that_cel_reads_are_bounded() -> None:
    # Unbounded strings make the API server's CEL cost estimate exceed its budget.
    for path, node in walk(schema()):
        if node.get("type") == "string" and "x-kubernetes-validations" in node:
            assert "maxLength" in node, path


def test_printer_columns_and_names() -> None:
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Weight",
        "Step",
        "Ready",
        "State %",
        "Health",
        "Age",
        "Message",
    ]
    assert version["additionalPrinterColumns"][-1]["priority"] == 1  # MESSAGE only in -o wide
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["h9m"]
    assert crd["spec"]["scope"] == "Namespaced"


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    conditions = schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {"type", "status", "reason", "lastTransitionTime"}
