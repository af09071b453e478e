"""Walks the subschemas of a JSON Schema document, keyword by keyword.

Only keywords that hold schemas are followed: the values of ``enum``,
``const``, ``default`` or ``examples`` are data, and a ``properties`` entry
named ``"$ref"`` is a property name, not a reference. References are not
followed either; :mod:`gateway.structured.refs` deals with them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]

# Keywords whose value is one subschema (``items`` is also a list in old drafts).
_SINGLE = frozenset({
    "additionalItems", "additionalProperties", "contains", "contentSchema", "else", "if",
    "items", "not", "propertyNames", "then", "unevaluatedItems", "unevaluatedProperties",
})
# Keywords whose value maps names to subschemas (``dependencies`` may also map to lists).
_MAPS = frozenset({
    "$defs", "definitions", "dependencies", "dependentSchemas", "patternProperties", "properties",
})
# Keywords whose value is a list of subschemas.
_LISTS = frozenset({"allOf", "anyOf", "items", "oneOf", "prefixItems"})


@dataclass(frozen=True, slots=True)
class Node:
    """One subschema: where it is, what it is, and how deep (the root is 1)."""

    path: Path
    schema: Mapping[str, Any]
    depth: int


def children(schema: Mapping[str, Any]) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    """The immediate subschemas that are objects (boolean subschemas need no checks)."""
    for keyword, value in schema.items():
        if keyword in _SINGLE and isinstance(value, Mapping):
            yield (keyword,), value
        elif keyword in _MAPS and isinstance(value, Mapping):
            for name, sub in value.items():
                if isinstance(sub, Mapping):
                    yield (keyword, name), sub
        elif keyword in _LISTS and isinstance(value, list):
            for index, sub in enumerate(value):
                if isinstance(sub, Mapping):
                    yield (keyword, index), sub


def walk(root: Mapping[str, Any]) -> Iterator[Node]:
    """Every subschema of ``root``, depth first, the root included."""
    stack = [Node((), root, 1)]
    while stack:
        node = stack.pop()
        yield node
        for suffix, sub in children(node.schema):
            stack.append(Node(node.path + suffix, sub, node.depth + 1))


def pointer(path: Path) -> str:
    """The JSON Pointer of ``path`` (``""`` is the root)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def describe(path: Path, limit: int = 120) -> str:
    """A readable location for messages: ``/properties/a`` or ``the root``."""
    text = pointer(path)
    if not text:
        return "the root"
    return text if len(text) <= limit else "…" + text[-limit:]


def json_depth(document: object, limit: int) -> int:
    """How deeply objects and arrays nest (a scalar is 0); counts no further than ``limit + 1``."""
    level = [document] if isinstance(document, Mapping | list) else []
    depth = 0
    while level and depth <= limit:
        depth += 1
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, Mapping) else node)
            if isinstance(child, Mapping | list)
        ]
    return depth
