"""``docs/reference.md``: every spec and status field, generated from the models by ``make crd``.

It reads the same structural schema the CRD is made of (``crd.openapi_schema``), so a field's type,
default, limits and description in the reference are the ones the API server enforces and
``kubectl explain`` shows; a unit test fails when the committed file drifts from the models.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import models
from .crd import describe_default, openapi_schema

HEADER = """\
<!-- Generated from operator/hal9_migration/models/ by `make crd`. Do not edit. -->
# Hal9Migration field reference

Every field of a `Hal9Migration` (`{group}/{version}`, short name `{short}`), generated from the
operator's models, the same source as the CRD: what you read here is what the API server enforces and
what `kubectl explain {singular}.<path>` prints. Write **spec**; the operator writes **status**.

- A *duration* is a number and a unit, repeated: `500ms`, `30s`, `5m`, `1h30m`, `7d`.
- A *ratio* is a fraction from 0 to 1 (`0.99` is 99 %); a *percent* is a whole number from 0 to 100.
- `[]` in a path is each item of a list; `*` is each value of a map.
- A default is what the API server fills in when the field is absent; an object with defaulted fields
  is filled in even when you leave the whole object out.

"""


def render_reference() -> str:
    """The whole reference, as committed in ``docs/reference.md``."""
    header = HEADER.format(
        group=models.GROUP, version=models.VERSION, short=models.SHORT_NAMES[0], singular=models.SINGULAR
    )
    parts = [header]
    for title, model in (("spec", models.Hal9MigrationSpec), ("status", models.Hal9MigrationStatus)):
        parts.append(f"## {title}\n\n")
        parts.extend(_section(path, node) for path, node in _objects(openapi_schema(model), title))
    return "".join(parts).rstrip("\n") + "\n"


def _objects(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object with fields under ``node`` (itself included), depth first, in field order."""
    if "properties" in node:
        yield path, node
        for name, prop in node["properties"].items():
            yield from _objects(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _objects(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _objects(node["additionalProperties"], f"{path}.*")


def _section(path: str, node: dict[str, Any]) -> str:
    lines = [f"### `{path}`", ""]
    if node.get("description"):
        lines += [node["description"], ""]
    rules = [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
    if rules:
        lines += ["Rules:", "", *(f"- {message}" for message in rules), ""]
    lines += ["| Field | Type | Default | Limits | Description |", "|---|---|---|---|---|"]
    required = set(node.get("required", []))
    for name, prop in node["properties"].items():
        field = f"`{name}`" + (" (required)" if name in required else "")
        default = f"`{describe_default(prop['default'])}`" if _shown_default(prop) else ""
        limits = _limits(prop, with_rules=not _has_section(prop))
        cells = [
            field,
            _type(prop, f"{path}.{name}"),
            default,
            "<br>".join(limits),
            prop.get("description", ""),
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n\n"


def _shown_default(prop: dict[str, Any]) -> bool:
    # An object's default ({}) only says its own fields' defaults apply; those are listed with them.
    return "default" in prop and not isinstance(prop["default"], dict)


def _has_section(prop: dict[str, Any]) -> bool:
    """Whether ``prop`` is an object (or a list or map of objects) with a section of its own, which lists
    its rules."""
    inner = prop.get("items") or prop.get("additionalProperties") or prop
    return isinstance(inner, dict) and "properties" in inner


def _type(prop: dict[str, Any], path: str) -> str:
    if prop.get("x-kubernetes-preserve-unknown-fields"):
        return "object (any fields)"
    kind = prop.get("type", "")
    if kind == "array":
        items = prop["items"]
        if items.get("x-kubernetes-preserve-unknown-fields"):
            return "list of object (any fields)"
        return "list of " + _type(items, f"{path}[]")
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return "map of " + _type(prop["additionalProperties"], f"{path}.*")
    if kind == "object" and "properties" in prop:
        return f"[object](#{_anchor(path)})"
    if prop.get("format") == "date-time":
        return "string (RFC 3339 time)"
    return str(kind)


def _bounds(prop: dict[str, Any], low: str, high: str, both: str, one: str) -> list[str]:
    """A lower and an upper bound as one limit, ``1 to 100``; an exclusive bound as ``> 0``."""
    strict_low = prop.get("exclusiveMinimum") is True
    strict_high = prop.get("exclusiveMaximum") is True
    if low in prop and high in prop and not (strict_low or strict_high):
        return [both.format(prop[low], prop[high])]
    found = []
    if low in prop:
        found.append(one.format("> " if strict_low else "≥ ", prop[low]))
    if high in prop:
        found.append(one.format("< " if strict_high else "≤ ", prop[high]))
    return found


def _anchor(path: str) -> str:
    """The id GitHub gives the heading of ``path``'s section (lowercase, punctuation dropped)."""
    return re.sub(r"[^a-z0-9_ -]", "", path.lower()).replace(" ", "-")


def _limits(prop: dict[str, Any], with_rules: bool = True) -> list[str]:
    found = []
    if "enum" in prop:
        found.append("one of " + ", ".join(f"`{value}`" for value in prop["enum"]))
    found += _bounds(prop, "minimum", "maximum", "{} to {}", "{}{}")
    if "enum" not in prop:  # an enum's maxLength is only there for the CEL cost estimate
        found += _bounds(prop, "minLength", "maxLength", "{} to {} characters", "{}{} characters")
    found += _bounds(prop, "minItems", "maxItems", "{} to {} items", "{}{} items")
    found += _bounds(prop, "minProperties", "maxProperties", "{} to {} entries", "{}{} entries")
    if "pattern" in prop:
        found.append(f"matches `{prop['pattern']}`")
    if prop.get("x-kubernetes-list-type") == "set":
        found.append("no duplicates")
    if prop.get("x-kubernetes-list-type") == "map":
        found.append("unique by " + ", ".join(f"`{key}`" for key in prop["x-kubernetes-list-map-keys"]))
    if with_rules:
        found += [rule["message"] for rule in prop.get("x-kubernetes-validations", [])]
    for key, where in (("items", "each item"), ("additionalProperties", "each value")):
        inner = prop.get(key)
        if isinstance(inner, dict) and "properties" not in inner:
            found += [f"{where}: {limit}" for limit in _limits(inner)]
    return found


def _cell(text: str) -> str:
    """Text safe inside a GitHub table cell: no line breaks, pipes escaped (also inside code spans)."""
    return text.replace("\n\n", "<br><br>").replace("\n", " ").replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hal9_migration.reference", description=__doc__)
    parser.add_argument("-o", "--output", type=Path, required=True, help="the Markdown file to write")
    args = parser.parse_args(argv)
    args.output.write_text(render_reference())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
