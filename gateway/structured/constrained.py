"""Request fields for grammar-constrained decoding in vLLM.

vLLM's OpenAI server (0.32) accepts, on both ``/v1/chat/completions`` and
``/v1/completions``, ``response_format`` as OpenAI's
``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``, and
also ``{"type": "structural_tag", "format": {...}}``, which it hands to
xgrammar unchanged. Only the second form can bound whitespace per request:
xgrammar's ``json_schema`` format takes ``max_whitespace_cnt``, the most
whitespace characters allowed in one gap between JSON elements. Without it
the grammar allows any amount of whitespace, and a model may emit nothing
but whitespace until ``max_tokens`` (the whitespace run-away).

The per-request ``structured_outputs.disable_any_whitespace`` and
``whitespace_pattern`` fields are accepted by vLLM 0.32 but ignored by its
xgrammar and guidance backends, which read only the engine-wide
``--structured-outputs-config '{"disable_any_whitespace": true}'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.structured.token_bound import max_tokens_bound

DEFAULT_MAX_WHITESPACE = 4
# Keywords the engine's grammar compiler refuses (vLLM 0.32 answers 400 "Unimplemented
# keys" for uniqueItems). They are left out of the grammar only: the gateway's own
# validation still checks every answer against the full schema.
GRAMMAR_UNSUPPORTED = frozenset({
    "uniqueItems", "contains", "minContains", "maxContains", "dependentRequired",
    "dependentSchemas", "if", "then", "else", "not", "propertyNames",
    "unevaluatedProperties", "unevaluatedItems",
})


# Keywords whose value maps names to subschemas, and keywords whose value is data:
# neither their keys nor their data are keywords to strip.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_DATA = frozenset({"enum", "const", "default", "examples", "required"})


def grammar_schema(schema: Any) -> Any:
    """``schema`` without the keywords the grammar compiler cannot handle."""
    if isinstance(schema, list):
        return [grammar_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key in GRAMMAR_UNSUPPORTED:
            continue
        if key in _DATA:
            kept[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            kept[key] = {name: grammar_schema(sub) for name, sub in value.items()}
        else:
            kept[key] = grammar_schema(value)
    return kept


def constrained_fields(
    schema: Mapping[str, Any],
    name: str = "answer",
    *,
    max_whitespace: int | None = DEFAULT_MAX_WHITESPACE,
) -> dict[str, Any]:
    """The body fields that make vLLM decode under ``schema``'s grammar.

    With ``max_whitespace`` (the default) the whitespace between elements is
    bounded; ``None`` gives the plain OpenAI ``json_schema`` form.
    """
    schema = grammar_schema(schema)
    if max_whitespace is None:
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": dict(schema), "strict": True},
            }
        }
    if max_whitespace < 1:
        raise ValueError(f"max_whitespace must be at least 1, got {max_whitespace}")
    return {
        "response_format": {
            "type": "structural_tag",
            "format": {
                "type": "json_schema",
                "json_schema": dict(schema),
                "max_whitespace_cnt": max_whitespace,
            },
        }
    }


def constrained_max_tokens(
    schema: Mapping[str, Any],
    requested: int | None,
    max_whitespace: int | None = DEFAULT_MAX_WHITESPACE,
) -> int | None:
    """``max_tokens`` for a constrained attempt: the request's, lowered to the schema's bound."""
    bound = None if max_whitespace is None else max_tokens_bound(schema, max_whitespace)
    if bound is None:
        return requested
    return bound if requested is None else min(requested, bound)
