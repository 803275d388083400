"""Generate the Hal9Migration CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema (2020-12 flavour, with ``$defs``/``$ref`` and ``anyOf`` for optionals);
Kubernetes wants a structural OpenAPI v3 schema: every ref inlined, no ``anyOf`` around a type, no
``title``, boolean ``exclusiveMinimum``. This module does that translation and nothing else; the
rules themselves live in ``models/``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from pydantic import BaseModel

from . import models

# Keys pydantic emits that have no meaning (or are not allowed) in a structural schema.
_DROPPED_KEYS = {"title", "$defs", "discriminator"}

# The top-level fields every Kubernetes object has. apiVersion and kind are described in Kubernetes' own
# words (TypeMeta's), so ``kubectl explain`` reads the same for them as for any built-in kind. metadata
# must stay a bare object: the API server refuses a CRD that says anything more about it, and publishes
# ObjectMeta's own schema and description in its place.
_OBJECT_FIELDS: dict[str, dict[str, Any]] = {
    "apiVersion": {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object. Servers "
        "should convert recognized schemas to the latest internal value, and may reject unrecognized values. "
        "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
    },
    "kind": {
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object represents. "
        "Servers may infer this from the endpoint the client submits requests to. Cannot be updated. "
        "In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
    },
    "metadata": {"type": "object"},
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.weight"},
    {"name": "Step", "type": "integer", "jsonPath": ".status.step"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "State %", "type": "integer", "jsonPath": ".status.stateMigration.percent"},
    {"name": "Health", "type": "number", "jsonPath": ".status.health.score"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Message",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    },
]


# The status a Hal9Migration reads as until an operator writes its own: a structural-schema default on
# ``status``, which the API server applies whenever it reads an object without one (on every GET, watch
# and list). Without it, an object no operator has seen has no status at all, and kstatus (Flux,
# ``helm --wait``, ``kubectl wait``) calls it Current: healthy before anything happened. With it,
# kstatus reads InProgress twice over: observedGeneration -1 never equals metadata.generation, and
# Reconciling is True. The operator's first status write (a merge patch) replaces both fields.
AWAITING_OPERATOR_STATUS: dict[str, Any] = {
    "observedGeneration": -1,
    "conditions": [
        {
            "type": "Reconciling",
            "status": "True",
            "reason": "AwaitingOperator",
            "message": "No operator has observed this migration yet",
            "lastTransitionTime": "1970-01-01T00:00:00Z",
        }
    ],
}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model``, as the API server wants it."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.get("$defs", {})
    return dict(_structural(schema, definitions))


def _structural(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    while "$ref" in node or "anyOf" in node:
        node = _inline_ref(node, definitions) if "$ref" in node else _collapse_optional(node)
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        node = {**inner, **node}
    for key in _DROPPED_KEYS:
        node.pop(key, None)
    if node.get("type") == "object" and "properties" in node:
        node.setdefault("additionalProperties", None)
        if node["additionalProperties"] in (None, False):
            del node["additionalProperties"]
    if node.get("additionalProperties") is True:
        # pydantic's dict[str, Any]. To the API server ``additionalProperties: true`` means values with
        # an empty schema, whose own fields it prunes (even beside preserve-unknown-fields): keep them all.
        del node["additionalProperties"]
        node["x-kubernetes-preserve-unknown-fields"] = True
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node[bound], bool):
            node[flag] = node.pop(bound)
            node[bound] = True
    if "default" in node and node["default"] is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("type") == "string" and "enum" in node:
        # Bounded strings keep the API server's CEL cost estimate low.
        node.setdefault("maxLength", max(len(value) for value in node["enum"]))
    if isinstance(node.get("description"), str):
        node["description"] = _prose(node["description"])
    return {
        key: (_structural(value, definitions) if key not in ("default", "enum", "example") else value)
        for key, value in node.items()
    }


def _inline_ref(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    target = copy.deepcopy(definitions[node.pop("$ref").rsplit("/", 1)[-1]])
    # Sibling keys of a $ref (a field's description, default, CEL rules) refine the target.
    rules = target.get("x-kubernetes-validations", []) + node.pop("x-kubernetes-validations", [])
    target.update(node)
    if rules:
        target["x-kubernetes-validations"] = rules
    return dict(target)


def _collapse_optional(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` (pydantic's ``X | None``) becomes plain ``X``: absence is the null."""
    options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
    if len(options) != 1:
        raise ValueError(f"cannot express a union of {len(options)} types in a structural schema: {options}")
    return {**options[0], **node}


def _prose(text: str) -> str:
    """A docstring's wrapped lines joined into paragraphs, as ``kubectl explain`` re-wraps them itself."""
    paragraphs = text.strip().split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def describe_default(default: Any) -> str:
    """A schema default as a user writes it in a manifest: ``7d``, ``true``, ``[1, 5, 10, 25]``, ``""``."""
    if isinstance(default, str) and default:
        return default
    return json.dumps(default)


def _with_defaults_described(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with each property's scalar or list default appended to its description.

    ``kubectl explain`` shows descriptions but not defaults, and a user choosing a value needs both. An
    object's default (``{}``) says nothing a user could act on; its own fields carry theirs.
    """
    node = dict(node)
    if "properties" in node:
        properties = {}
        for name, prop in node["properties"].items():
            prop = _with_defaults_described(prop)
            if "default" in prop and not isinstance(prop["default"], dict):
                prop["description"] = f"{prop['description']} Default: {describe_default(prop['default'])}."
            properties[name] = prop
        node["properties"] = properties
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _with_defaults_described(node[key])
    return node


def build_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition manifest."""
    spec_schema = _with_defaults_described(openapi_schema(models.Hal9MigrationSpec))
    status_schema = {
        **_with_defaults_described(openapi_schema(models.Hal9MigrationStatus)),
        "default": AWAITING_OPERATOR_STATUS,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{models.PLURAL}.{models.GROUP}",
            "labels": {"app.kubernetes.io/name": "hal9-migration-operator"},
        },
        "spec": {
            "group": models.GROUP,
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.SINGULAR,
                "shortNames": models.SHORT_NAMES,
                "categories": ["hal9", "all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "Hal9Migration moves HAL9 from its flat to its hierarchical "
                            "architecture, one gated phase at a time.",
                            "required": ["spec"],
                            "properties": {
                                **_OBJECT_FIELDS,
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML committed under ``crds/``."""
    header = "# Generated from operator/hal9_migration/models/ by `make crd`. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)
