from __future__ import annotations

import itertools
import json
from typing import Any

from gateway.structured.token_bound import Size, max_tokens_bound, size_of
from gateway.structured.validation import CompiledSchema


def test_ticket_bound_covers_the_longest_valid_answer(ticket: CompiledSchema) -> None:
    size = size_of(ticket.schema)
    assert size is not None
    properties = ticket.schema["properties"]
    longest = max(
        (
            {"category": c, "priority": p, "escalate": e}
            for c, p, e in itertools.product(
                properties["category"]["enum"], properties["priority"]["enum"], [True, False]
            )
        ),
        key=lambda doc: len(json.dumps(doc, separators=(",", ":"))),
    )
    assert size.chars == len(json.dumps(longest, separators=(",", ":")))


def test_bound_adds_whitespace_gaps_and_the_stop_token() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}},
              "additionalProperties": False}
    assert size_of(schema) == Size(len('{"a":false}'), 5)
    assert max_tokens_bound(schema, 2) == len('{"a":false}') + (5 + 2) * 2 + 1


def test_scalars_and_literals() -> None:
    assert size_of({"type": "null"}) == Size(4, 0)
    assert size_of({"type": ["boolean", "null"]}) == Size(5, 0)
    assert size_of({"const": {"a": [1, 2]}}) == Size(len('{"a":[1,2]}'), 8)
    assert size_of({"enum": ["é", "ab"]}) == Size(len('"\\u00e9"'), 0)
    assert size_of({"type": "integer", "minimum": -500, "maximum": 20}) == Size(4, 0)
    assert size_of({"type": "string", "maxLength": 3}) == Size(2 + 36, 0)
    assert size_of({"type": "string", "format": "date"}) == Size(12, 0)


def test_arrays_and_combinators() -> None:
    array = {"type": "array", "items": {"enum": ["ab", "c"]}, "maxItems": 3}
    assert size_of(array) == Size(2 + 3 * 4 + 2, 1 + 3 * 2)
    either = {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 1}]}
    assert size_of(either) == Size(14, 0)
    both = {"allOf": [{"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 2}]}
    assert size_of(both) == Size(2 + 24, 0)


def test_unbounded_schemas_give_none() -> None:
    unbounded: list[Any] = [
        {},
        True,
        {"type": "string"},
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "integer", "minimum": 0},
        {"type": "array", "items": {"type": "boolean"}},
        {"type": "object", "properties": {"a": {"type": "boolean"}}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
        {"$ref": "#/$defs/x"},
        {"anyOf": [{"type": "null"}, {"type": "string"}]},
    ]
    for schema in unbounded:
        assert size_of(schema) is None, schema
    assert max_tokens_bound({"type": "string"}, 4) is None
