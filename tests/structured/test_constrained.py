from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.structured.constrained import (
    DEFAULT_MAX_WHITESPACE,
    constrained_fields,
    constrained_max_tokens,
)
from gateway.structured.validation import CompiledSchema


def test_default_form_bounds_whitespace(ticket: CompiledSchema) -> None:
    fields = constrained_fields(ticket.schema, "ticket")
    assert fields == {
        "response_format": {
            "type": "structural_tag",
            "format": {
                "type": "json_schema",
                "json_schema": dict(ticket.schema),
                "max_whitespace_cnt": DEFAULT_MAX_WHITESPACE,
            },
        }
    }
    json.dumps(fields)  # plain JSON for the request body


def test_plain_openai_form(ticket: CompiledSchema) -> None:
    fields = constrained_fields(ticket.schema, "ticket", max_whitespace=None)
    assert fields["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "ticket", "schema": dict(ticket.schema), "strict": True},
    }


def test_max_whitespace_must_be_positive(ticket: CompiledSchema) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        constrained_fields(ticket.schema, max_whitespace=0)


def test_max_tokens_is_lowered_to_the_schema_bound(ticket: CompiledSchema) -> None:
    bound = constrained_max_tokens(ticket.schema, None)
    assert bound is not None and bound < 200
    assert constrained_max_tokens(ticket.schema, 1000) == bound
    assert constrained_max_tokens(ticket.schema, 10) == 10
    assert constrained_max_tokens(ticket.schema, 1000, max_whitespace=None) == 1000
    assert constrained_max_tokens({"type": "string"}, 512) == 512


def test_grammar_leaves_out_unsupported_keywords() -> None:
    from gateway.structured.constrained import constrained_fields

    tags: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    schema: dict[str, Any] = {"type": "object", "properties": {"tags": tags}}
    fields = constrained_fields(schema)
    sent = fields["response_format"]["format"]["json_schema"]
    assert "uniqueItems" not in sent["properties"]["tags"]
    assert tags["uniqueItems"] is True


def test_grammar_keeps_properties_and_data_named_like_keywords() -> None:
    from gateway.structured.constrained import grammar_schema

    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"if": {"type": "string"}, "contains": {"type": "integer"},
                       "tags": {"type": "array", "uniqueItems": True}},
        "required": ["if", "contains"],
        "additionalProperties": False,
        "not": {"required": ["x"]},
        "$defs": {"then": {"enum": [{"not": 1}]}},
    }
    sent = grammar_schema(schema)
    assert set(sent["properties"]) == {"if", "contains", "tags"}
    assert "uniqueItems" not in sent["properties"]["tags"]
    assert sent["required"] == ["if", "contains"] and "not" not in sent
    assert sent["$defs"]["then"]["enum"] == [{"not": 1}]
