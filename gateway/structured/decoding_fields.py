"""One gate for every field that asks the engine for structured decoding.

``response_format`` is resolved in ``response_format``. vLLM also reads
``structured_outputs`` (``json``, ``regex``, ``choice``, ``grammar``, ...) and the
older ``guided_*`` fields; each of them makes the engine compile a grammar from
client input, the class of input behind vLLM's published denial-of-service
advisories. So they pass the same bounds as ``response_format`` (schemas through
the validator cache, regexes by length, choices through the enum bound), or are
refused with a 400 whose ``param`` names the field: grammars and structural tags,
and keys the gate does not know. What the engine's compiler makes of what passes
here is measured before it reaches the engine: the compile check (``gateway.grammar``)
sees every grammar an engine request carries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.structured.errors import InvalidResponseFormat, SchemaRejected
from gateway.structured.validation import ValidatorCache

STRUCTURED_OUTPUTS = "structured_outputs"
# Top-level fields, each with the kind of value it carries.
GUIDED_FIELDS: Mapping[str, str] = {
    "guided_json": "schema",
    "guided_regex": "regex",
    "guided_choice": "choice",
    "guided_grammar": "refused",
    "guided_whitespace_pattern": "regex",
    "guided_decoding_backend": "name",
    "structural_tag": "refused",
}
# The keys of ``structured_outputs`` (vLLM's StructuredOutputsParams).
STRUCTURED_OUTPUT_KEYS: Mapping[str, str] = {
    "json": "schema",
    "regex": "regex",
    "choice": "choice",
    "grammar": "refused",
    "structural_tag": "refused",
    "json_object": "flag",
    "whitespace_pattern": "regex",
    "disable_fallback": "flag",
    "disable_any_whitespace": "flag",
    "disable_additional_properties": "flag",
}
# Every field that asks the engine for a format (a structured request's first attempt
# goes without them, so that the model's own adherence is measured).
DECODING_FIELDS: tuple[str, ...] = ("response_format", STRUCTURED_OUTPUTS, *GUIDED_FIELDS)
_MAX_NAME_CHARS = 64


def has_decoding_fields(body: Mapping[str, Any]) -> bool:
    """True when ``body`` asks the engine for structured decoding by any field."""
    return any(field in body for field in DECODING_FIELDS)


def check_decoding_fields(body: Mapping[str, Any], cache: ValidatorCache) -> None:
    """Refuses (400) any structured-decoding field outside the bounds; ``response_format``
    is checked where it is resolved."""
    for field, kind in GUIDED_FIELDS.items():
        if body.get(field) is not None:
            _check(kind, body[field], field, cache)
    options = body.get(STRUCTURED_OUTPUTS)
    if options is None:
        return
    if not isinstance(options, Mapping):
        raise InvalidResponseFormat(f"{STRUCTURED_OUTPUTS} must be an object",
                                    param=STRUCTURED_OUTPUTS)
    for key, value in options.items():
        param = f"{STRUCTURED_OUTPUTS}.{key}"
        if key not in STRUCTURED_OUTPUT_KEYS:
            raise InvalidResponseFormat(
                f"{param} is not supported; use one of {sorted(STRUCTURED_OUTPUT_KEYS)}",
                param=param)
        if value is not None:
            _check(STRUCTURED_OUTPUT_KEYS[key], value, param, cache)


def _check(kind: str, value: object, param: str, cache: ValidatorCache) -> None:
    if kind == "schema":
        _check_schema(value, param, cache)
    elif kind == "regex":
        _check_regex(value, param, cache)
    elif kind == "choice":
        _check_choice(value, param, cache)
    elif kind == "flag":
        if not isinstance(value, bool):
            raise InvalidResponseFormat(f"{param} must be true or false", param=param)
    elif kind == "name":
        if not isinstance(value, str) or len(value) > _MAX_NAME_CHARS:
            raise InvalidResponseFormat(f"{param} must be a short name", param=param)
    else:
        raise InvalidResponseFormat(
            f"{param} is not accepted by this gateway: grammars and structural tags cannot "
            "be bounded before the engine compiles them; ask for JSON with response_format "
            "(json_schema) instead", param=param)


def _check_schema(value: object, param: str, cache: ValidatorCache) -> None:
    if isinstance(value, str):  # vLLM also takes the schema as a JSON string
        if len(value) > cache.bounds.max_schema_bytes:
            raise SchemaRejected(f"{param} is longer than {cache.bounds.max_schema_bytes} "
                                 "characters: use a smaller schema", param=param)
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SchemaRejected(f"{param} is a string that is not JSON", param=param) from exc
    try:
        cache.compile(value)
    except SchemaRejected as exc:
        raise SchemaRejected(exc.message, param=param) from exc


def _check_regex(value: object, param: str, cache: ValidatorCache) -> None:
    if not isinstance(value, str):
        raise InvalidResponseFormat(f"{param} must be a regular expression (a string)",
                                    param=param)
    if len(value) > cache.bounds.max_pattern_chars:
        raise SchemaRejected(f"{param} is longer than {cache.bounds.max_pattern_chars} "
                             "characters: use a shorter pattern", param=param)


def _check_choice(value: object, param: str, cache: ValidatorCache) -> None:
    limit = cache.bounds.max_enum_values
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidResponseFormat(f"{param} must be a non-empty list of strings", param=param)
    if len(value) > limit:
        raise SchemaRejected(f"{param} has {len(value)} choices; the limit is {limit}",
                             param=param)
    if sum(len(v) for v in value) > cache.bounds.max_schema_bytes:
        raise SchemaRejected(f"{param} is larger than {cache.bounds.max_schema_bytes} "
                             "characters in all: use fewer or shorter choices", param=param)
