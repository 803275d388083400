"""The generated schema is structural: what the API server accepts (checked for real in integration)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticUndefined

from hal9_migration.crd import AWAITING_OPERATOR_STATUS, build_crd, describe_default
from hal9_migration.models import Hal9MigrationSpec, Hal9MigrationStatus
from hal9_migration.plan import load_status
from hal9_migration.reference import render_reference
from tests.support.manifests import ROOT

REFERENCE = ROOT / "docs" / "reference.md"

RFC3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"
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


def test_no_object_allows_values_without_a_schema() -> None:
    # additionalProperties: true makes the API server prune (or, with strict field validation, refuse)
    # every field below each value, even under x-kubernetes-preserve-unknown-fields.
    for path, node in walk(schema()):
        assert node.get("additionalProperties") is not True, path


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


def _fields_with_defaults(model: type[BaseModel], path: str) -> Iterator[tuple[str, Any]]:
    """(path, default) for every spec field with a default; a nested model's default is ``{}``."""
    for name, field in model.model_fields.items():
        alias = field.alias or name
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from _fields_with_defaults(nested, f"{path}.{alias}")
        if field.default is PydanticUndefined and field.default_factory is None:
            continue
        default = field.get_default(call_default_factory=True)
        if default is None or default == []:
            continue  # absent and empty need no schema default
        yield (
            f"{path}.{alias}",
            {} if nested is not None else TypeAdapter(Any).dump_python(default, mode="json"),
        )


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _schema_at(path: str) -> dict[str, Any]:
    node = schema()["properties"]["spec"]
    for part in path.split(".")[1:]:
        node = node.get("properties", {}).get(part) or node["items"]["properties"][part]
    return dict(node)


def test_every_model_default_is_the_schema_default() -> None:
    # The API server applies schema defaults before CEL rules read them; a default only pydantic
    # knows would make the API server refuse (or judge differently) what the operator accepts.
    checked = list(_fields_with_defaults(Hal9MigrationSpec, "spec"))
    assert len(checked) > 30
    for path, default in checked:
        assert _schema_at(path).get("default") == default, path


def _problems(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    """Where ``value`` breaks the structural ``schema``, for the keywords this CRD uses. The API server
    refuses a CRD whose default does not validate, and prunes a default's unknown fields."""
    kinds: dict[str, tuple[type, ...]] = {
        "object": (dict,),
        "array": (list,),
        "string": (str,),
        "integer": (int,),
        "number": (int, float),
        "boolean": (bool,),
    }
    expected = schema.get("type")
    if expected in kinds:
        right_kind = isinstance(value, kinds[expected]) and (expected == "boolean") == isinstance(value, bool)
        if not right_kind:
            return [f"{path}: not of type {expected}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{path}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{path}: does not match {schema['pattern']}")
        if schema.get("format") == "date-time" and not re.fullmatch(RFC3339, value):
            found.append(f"{path}: not an RFC 3339 date-time")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: above {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        found += [f"{path}.{key}: unknown field (would be pruned)" for key in value if key not in properties]
        found += [f"{path}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in properties:
                found += _problems(properties[key], item, f"{path}.{key}")
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += _problems(schema["items"], item, f"{path}[{i}]")
        for key in schema.get("x-kubernetes-list-map-keys", []):
            keys = [item.get(key) for item in value]
            if len(keys) != len(set(keys)):
                found.append(f"{path}: duplicate {key} in a list-map")
    return found


def test_a_status_nobody_wrote_reads_as_awaiting_the_operator() -> None:
    # kstatus calls an object without status Current; with this default the API server shows one that
    # reads InProgress (tests/integration/test_kstatus.py checks it with the real kstatus).
    status = schema()["properties"]["status"]
    assert status["default"] == AWAITING_OPERATOR_STATUS
    assert AWAITING_OPERATOR_STATUS["observedGeneration"] < 1  # never a real metadata.generation
    [reconciling] = AWAITING_OPERATOR_STATUS["conditions"]
    assert (reconciling["type"], reconciling["status"], reconciling["reason"]) == (
        "Reconciling",
        "True",
        "AwaitingOperator",
    )


def test_the_default_status_is_valid_against_the_schema_and_the_models() -> None:
    status = schema()["properties"]["status"]
    assert _problems(status, AWAITING_OPERATOR_STATUS, "status") == []
    # The operator reads it like any status it wrote itself, nothing dropped.
    parsed = Hal9MigrationStatus.model_validate(AWAITING_OPERATOR_STATUS)
    assert load_status(AWAITING_OPERATOR_STATUS) == parsed
    assert parsed.observed_generation == -1
    assert [(c.type, c.status, c.reason, c.message, c.last_transition_time) for c in parsed.conditions] == [
        (
            "Reconciling",
            "True",
            "AwaitingOperator",
            "No operator has observed this migration yet",
            "1970-01-01T00:00:00Z",
        )
    ]


def test_the_schema_check_catches_what_the_api_server_would_refuse() -> None:
    status = schema()["properties"]["status"]
    condition = AWAITING_OPERATOR_STATUS["conditions"][0]
    assert _problems(status, {**AWAITING_OPERATOR_STATUS, "observedGen": 1}, "status")
    assert _problems(status, {"conditions": [{**condition, "reason": "awaiting operator"}]}, "status")
    assert _problems(status, {"conditions": [{**condition, "status": "Yes"}]}, "status")
    assert _problems(status, {"conditions": [condition, condition]}, "status")
    assert _problems(status, {"conditions": [{"type": "Reconciling", "status": "True"}]}, "status")
    assert _problems(status, {"conditions": [{**condition, "lastTransitionTime": "yesterday"}]}, "status")
    assert _problems(status, {"observedGeneration": "-1"}, "status")


def _undescribed(node: dict[str, Any], path: str) -> list[str]:
    """Every property under ``node`` (through list items and map values too) without a description, and
    every object item or map value schema without one: what ``kubectl explain`` would show as blank."""
    found = []
    for name, prop in node.get("properties", {}).items():
        if not str(prop.get("description", "")).strip():
            found.append(f"{path}.{name}")
        found += _undescribed(prop, f"{path}.{name}")
    for key, marker in (("items", "[]"), ("additionalProperties", ".*")):
        inner = node.get(key)
        if isinstance(inner, dict):
            if "properties" in inner and not str(inner.get("description", "")).strip():
                found.append(f"{path}{marker}")
            found += _undescribed(inner, f"{path}{marker}")
    return found


def test_every_field_has_a_description() -> None:
    versions = build_crd()["spec"]["versions"]
    for version in versions:
        root = version["schema"]["openAPIV3Schema"]
        assert str(root.get("description", "")).strip(), version["name"]
        # The API server refuses a CRD that describes metadata and publishes ObjectMeta's own description
        # (tests/integration/test_explain.py sees it there).
        missing = [
            path for path in _undescribed(root, version["name"]) if path != f"{version['name']}.metadata"
        ]
        assert not missing, f"{len(missing)} fields without a description:\n" + "\n".join(missing)
        assert root["properties"]["metadata"] == {"type": "object"}
    assert len(_paths(schema(), "")) > 200  # the walk really reached the nested fields


def _paths(node: dict[str, Any], path: str) -> list[str]:
    found = []
    for name, prop in node.get("properties", {}).items():
        found += [f"{path}.{name}", *_paths(prop, f"{path}.{name}")]
    for key, marker in (("items", "[]"), ("additionalProperties", ".*")):
        if isinstance(node.get(key), dict):
            found += _paths(node[key], f"{path}{marker}")
    return found


def test_the_description_check_names_a_blank_field() -> None:
    blank = {"properties": {"a": {"description": "x", "items": {"properties": {"b": {"description": " "}}}}}}
    assert _undescribed(blank, "v") == ["v.a[]", "v.a[].b"]


def test_descriptions_state_the_scalar_defaults() -> None:
    # kubectl explain prints descriptions but not defaults.
    described = 0
    for path, node in walk(schema()):
        for name, prop in node.get("properties", {}).items():
            if "default" in prop and not isinstance(prop["default"], dict):
                assert prop["description"].endswith(f" Default: {describe_default(prop['default'])}."), (
                    f"{path}.{name}"
                )
                described += 1
    assert described > 40
    assert describe_default([1, 5, 10, 25]) == "[1, 5, 10, 25]"
    assert describe_default(True) == "true"
    assert describe_default("") == '""'


def test_descriptions_are_prose_without_docstring_line_breaks() -> None:
    for path, node in walk(schema()):
        description = node.get("description")
        if isinstance(description, str):
            assert "\n" not in description.replace("\n\n", ""), path
            assert "``" not in description, path  # reStructuredText markup means nothing to a user


def test_committed_reference_matches_the_models() -> None:
    assert REFERENCE.read_text() == render_reference(), "docs/reference.md is stale: run `make crd`"


def test_the_reference_lists_every_spec_and_status_field() -> None:
    text = render_reference()
    for root in ("spec", "status"):
        for path in _paths(schema()["properties"][root], root):
            parent, name = path.rsplit(".", 1)
            section = text.split(f"### `{parent}`\n", 1)[1].split("\n### ", 1)[0]
            assert re.search(rf"^\| `{re.escape(name)}`", section, re.M), path


def test_the_reference_shows_type_default_limits_and_description() -> None:
    text = render_reference()
    canary = text.split("### `spec.phases.canary`\n", 1)[1].split("\n### ", 1)[0]
    [steps] = [line for line in canary.splitlines() if line.startswith("| `steps`")]
    cells = [cell.strip() for cell in steps.strip("|").split(" | ")]
    assert cells[:3] == ["`steps`", "list of integer", "`[1, 5, 10, 25]`"]
    assert "1 to 20 items" in cells[3] and "each item: 1 to 100" in cells[3]
    assert cells[4].startswith("Hierarchical weights in percent")
    spec = text.split("### `spec`\n", 1)[1].split("\n### ", 1)[0]
    assert "| `targetPhase` (required) | string |  | one of `Shadow`, `Canary`" in spec
    assert "[object](#specphasescanary)" in text.split("### `spec.phases`\n", 1)[1]
    # A pipe inside a pattern would end the table cell early on GitHub.
    for line in text.splitlines():
        if line.startswith("| `"):
            assert line.count(" | ") == 4 and "(ms|s" not in line, line
