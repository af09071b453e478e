"""An upper bound on the tokens a grammar-constrained answer can need.

When every value a schema allows is bounded (enums, ``const``, booleans,
integers with ``minimum`` and ``maximum``, strings with ``maxLength``, arrays
with ``maxItems``, objects with ``additionalProperties: false``), the longest
valid answer written compactly has a known size in bytes. A token is at least
one byte, so that size, plus the whitespace the grammar allows between
elements, bounds the tokens of any valid constrained answer: a tighter
``max_tokens`` loses no valid answer and stops a run-away early.

Sizes assume the forms a JSON grammar produces (integers without fraction or
exponent); a string character is counted as 12 bytes, the longest escape
(a ``\\uXXXX\\uXXXX`` surrogate pair). Anything unbounded gives ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_BYTES_PER_CHAR = 12
_FIXED_FORMATS = {"date": 10, "uuid": 36}
_SCALARS = {"null": 4, "boolean": 5}


@dataclass(frozen=True, slots=True)
class Size:
    """Compact bytes of the longest valid document, and its whitespace slots."""

    chars: int
    slots: int


def max_tokens_bound(schema: Mapping[str, Any], max_whitespace: int) -> int | None:
    """Tokens enough for any valid answer with at most ``max_whitespace`` per gap, or ``None``."""
    size = size_of(schema)
    if size is None:
        return None
    # Two more gaps around the document itself, and the stop token.
    return size.chars + (size.slots + 2) * max_whitespace + 1


def size_of(schema: object) -> Size | None:
    """The :class:`Size` of the longest document ``schema`` accepts, or ``None`` if unbounded."""
    if not isinstance(schema, Mapping) or "$ref" in schema or "$dynamicRef" in schema:
        return None
    bounds = [b for b in (_own(schema), _all_of(schema)) if b is not None]
    return min(bounds, key=lambda s: (s.chars, s.slots)) if bounds else None


def _own(schema: Mapping[str, Any]) -> Size | None:
    if "const" in schema:
        return _literal(schema["const"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return _largest([_literal(value) for value in schema["enum"]])
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list) and schema[keyword]:
            return _largest([size_of(branch) for branch in schema[keyword]])
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return _typed(kinds, schema)
    if isinstance(kinds, list) and kinds:
        return _largest([_typed(str(kind), schema) for kind in kinds])
    return None


def _all_of(schema: Mapping[str, Any]) -> Size | None:
    branches = schema.get("allOf")
    if not isinstance(branches, list):
        return None
    sizes = [s for s in (size_of(b) for b in branches) if s is not None]
    return min(sizes, key=lambda s: (s.chars, s.slots)) if sizes else None


def _largest(sizes: list[Size | None]) -> Size | None:
    if any(size is None for size in sizes):
        return None
    known = [size for size in sizes if size is not None]
    return Size(max(s.chars for s in known), max(s.slots for s in known))


def _literal(value: Any) -> Size:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    # Two gaps per bracket pair, colon and comma (over-counted inside strings: still a bound).
    return Size(len(text), 2 * sum(text.count(c) for c in "{[:,"))


def _typed(kind: str, schema: Mapping[str, Any]) -> Size | None:
    if kind in _SCALARS:
        return Size(_SCALARS[kind], 0)
    if kind == "integer":
        return _integer(schema)
    if kind == "string":
        return _string(schema)
    if kind == "object":
        return _object(schema)
    if kind == "array":
        return _array(schema)
    return None


def _integer(schema: Mapping[str, Any]) -> Size | None:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        return None
    return Size(max(len(str(int(low))), len(str(int(high)))), 0)


def _string(schema: Mapping[str, Any]) -> Size | None:
    length = schema.get("maxLength")
    if isinstance(length, int):
        return Size(2 + _BYTES_PER_CHAR * length, 0)
    fixed = _FIXED_FORMATS.get(str(schema.get("format")))
    return Size(2 + fixed, 0) if fixed is not None else None


def _object(schema: Mapping[str, Any]) -> Size | None:
    closed = schema.get("additionalProperties") is False
    if not closed or schema.get("patternProperties"):
        return None
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        return None
    chars, slots = 2 + max(len(properties) - 1, 0), 1
    for name, sub in properties.items():
        size = size_of(sub)
        if size is None:
            return None
        chars += len(json.dumps(name)) + 1 + size.chars
        slots += 4 + size.slots
    return Size(chars, slots)


def _array(schema: Mapping[str, Any]) -> Size | None:
    count = schema.get("maxItems")
    items = size_of(schema.get("items"))
    if not isinstance(count, int) or items is None:
        return None
    chars = 2 + count * items.chars + max(count - 1, 0)
    return Size(chars, 1 + count * (2 + items.slots))
