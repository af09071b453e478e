from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.structured.bounds import SchemaBounds, canonical_json, check_schema, digest_of
from gateway.structured.errors import SchemaRejected

BOUNDS = SchemaBounds()


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"type": "object", "properties": {"child": schema}}
    return schema


def rejected(schema: object, bounds: SchemaBounds = BOUNDS) -> str:
    with pytest.raises(SchemaRejected) as info:
        check_schema(schema, bounds)
    return info.value.message


def test_a_realistic_schema_passes() -> None:
    schema = {
        "type": "object",
        "properties": {
            "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            "slug": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
            "address": {"$ref": "#/$defs/address"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        },
        "patternProperties": {"^x-[a-z]+$": {"type": "string"}},
        "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
    checked = check_schema(schema, BOUNDS)
    assert checked.schema == schema and checked.schema is not schema
    assert list(checked.schema["properties"]) == ["sku", "slug", "address", "tags"]
    assert not checked.accepts_anything
    assert checked.digest == digest_of(checked.canonical)


def test_invalid_schema_is_checked_against_the_metaschema() -> None:
    message = rejected({"type": "stsring"})
    assert "invalid schema at $.type" in message and "integer, null, number" in message
    assert "$.properties.a.minimum" in rejected(
        {"properties": {"a": {"minimum": "zero"}}}
    )


def test_invalid_regex_is_rejected_when_the_validator_is_built() -> None:
    from gateway.structured.validation import ValidatorCache

    with pytest.raises(SchemaRejected) as info:
        ValidatorCache(BOUNDS).compile({"pattern": "([a-z]"})
    assert '"([a-z]" is not a "regex"' in info.value.message


@pytest.mark.parametrize("value", [True, False, [], "schema", 3])
def test_schema_must_be_an_object(value: object) -> None:
    assert "must be a JSON object" in rejected(value)


def test_schema_must_be_plain_json() -> None:
    assert "not plain JSON" in rejected({"minimum": float("nan")})
    assert "not plain JSON" in rejected({"const": object()})


def test_a_two_megabyte_schema_is_refused_by_size() -> None:
    # How fast: benchmarks/bench_hostile_schemas.py.
    schema = {"type": "object", "description": "x" * 2_000_000}
    message = rejected(schema)
    assert "2000034 bytes" in message and "limit is 1048576" in message


def test_a_two_megabyte_schema_of_many_parts_is_refused_by_size() -> None:
    schema = {"type": "string", "enum": [f"value-{i:07d}" for i in range(160_000)]}
    assert "bytes as compact JSON" in rejected(schema)


def test_size_counts_utf8_bytes() -> None:
    schema = {"description": "é" * 40}
    size = len(canonical_json(schema, BOUNDS).encode())
    assert "bytes as compact JSON" in rejected(schema, SchemaBounds(max_schema_bytes=size - 1))
    check_schema(schema, SchemaBounds(max_schema_bytes=size))


def test_a_hundred_levels_of_nesting_are_refused() -> None:
    message = rejected(nested(100))
    assert "more than 64 levels deep" in message and "/properties/child" in message


def test_nesting_at_the_limit_passes() -> None:
    check_schema(nested(64), BOUNDS)
    assert "more than 64 levels" in rejected(nested(65))


def test_deep_data_inside_a_schema_is_refused() -> None:
    deep: Any = []
    for _ in range(300):
        deep = [deep]
    assert "nests more than 256 levels" in rejected({"default": deep})


def test_property_count_is_bounded_across_the_schema() -> None:
    half = {f"p{i}": {"type": "string"} for i in range(2_001)}
    schema = {"properties": {"a": {"properties": half}, "b": {"properties": half}}}
    assert "more than 4000 properties" in rejected(schema)
    check_schema({"properties": half}, BOUNDS)


def test_five_hundred_properties_are_admitted() -> None:
    schema = {"type": "object", "required": ["p0"],
              "properties": {f"p{i}": {"type": "string"} for i in range(500)}}
    assert not check_schema(schema, BOUNDS).accepts_anything


def test_an_enum_beyond_its_bound_is_refused() -> None:
    message = rejected({"enum": list(range(10_001))})
    assert "10001 values; the limit is 10000" in message
    check_schema({"enum": list(range(10_000))}, BOUNDS)


def test_refs_are_bounded() -> None:
    schema = {
        "$defs": {"s": {"type": "string"}},
        "properties": {f"p{i}": {"$ref": "#/$defs/s"} for i in range(5)},
    }
    assert "more than 4 references" in rejected(schema, SchemaBounds(max_refs=4))
    check_schema(schema, SchemaBounds(max_refs=5))


def test_ordinary_patterns_are_admitted() -> None:
    """URL and version patterns that a catastrophic-regex heuristic used to flag: matched in
    linear time by the validator, so nothing to fear from them here."""
    for pattern in ("^(https?)://[^\\s/$.?#].[^\\s]*$", "^(\\d+\\.\\d+\\.\\d+.*)$",
                    "^(a+)+$", "(\\w+\\s?)+"):
        check_schema({"type": "string", "pattern": pattern}, BOUNDS)
    check_schema({"patternProperties": {"(.*)*": {}}}, BOUNDS)


@pytest.mark.timeout(30)  # a hang guard, not a speed target
def test_pattern_length_is_bounded() -> None:
    long = "x" * 16_384
    schema = {"properties": {f"p{i}": {"pattern": long} for i in range(4)}}
    check_schema(schema, BOUNDS)
    schema["properties"]["p4"] = {"pattern": long}
    assert "exceed 65536 characters in all" in rejected(schema)


def test_recursive_refs_and_embedded_resources_pass_the_bounds() -> None:
    tree = {
        "$defs": {"node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
        }}},
        "$ref": "#/$defs/node",
    }
    check_schema(tree, BOUNDS)
    check_schema({"$defs": {"a": {"$id": "https://example.com/a", "type": "string"}}}, BOUNDS)


def test_empty_schema_is_accepted_and_marked() -> None:
    assert check_schema({}, BOUNDS).accepts_anything
    assert check_schema({"title": "Anything", "description": "d"}, BOUNDS).accepts_anything
    assert not check_schema({"type": "object"}, BOUNDS).accepts_anything


@pytest.mark.parametrize(
    ("uri", "draft"),
    [
        (None, "Draft202012Validator"),
        ("https://json-schema.org/draft/2020-12/schema", "Draft202012Validator"),
        ("https://json-schema.org/draft/2019-09/schema", "Draft201909Validator"),
        ("http://json-schema.org/draft-07/schema#", "Draft7Validator"),
        ("http://json-schema.org/draft-07/schema", "Draft7Validator"),
        ("http://json-schema.org/draft-04/schema#", "Draft4Validator"),
    ],
)
def test_schema_keyword_selects_the_draft(uri: str | None, draft: str) -> None:
    schema = {"type": "string"} if uri is None else {"$schema": uri, "type": "string"}
    assert check_schema(schema, BOUNDS).validator_class.__name__ == draft


def test_unknown_metaschema_is_refused() -> None:
    assert "unsupported $schema" in rejected({"$schema": "https://example.com/my-meta"})


def test_canonical_form_ignores_key_order_and_spacing() -> None:
    a = canonical_json(json.loads('{"b": 1, "a": {"y": 2, "x": 3}}'), BOUNDS)
    b = canonical_json({"a": {"x": 3, "y": 2}, "b": 1}, BOUNDS)
    assert a == b == '{"a":{"x":3,"y":2},"b":1}'


def test_bounds_model_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        SchemaBounds.model_validate({"max_depht": 3})
    with pytest.raises(ValidationError):
        SchemaBounds(max_depth=0)


def _doubling_chain(levels: int, via: str) -> dict[str, Any]:
    """Each level refers to the next twice: 2**levels checks of one value."""
    defs: dict[str, Any] = {}
    for i in range(levels):
        target = {"pointer": f"#/$defs/d{i + 1}", "anchor": f"#d{i + 1}"}[via]
        defs[f"d{i}"] = {"$anchor": f"d{i}", "allOf": [{"$ref": target}, {"$ref": target}]}
    defs[f"d{levels}"] = {"$anchor": f"d{levels}", "type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


@pytest.mark.parametrize("via", ["pointer", "anchor"])
def test_references_that_expand_exponentially_are_refused(via: str) -> None:
    # 2**40 subschemas for one string: jsonschema-rs would hold the GIL for hours.
    message = rejected(_doubling_chain(40, via))
    assert "references expand to more than 1000000 subschemas" in message
    check_schema(_doubling_chain(12, via), BOUNDS)  # 4,096: fine


def test_shared_definitions_and_recursion_count_once_per_use() -> None:
    from gateway.structured.bounds import expansion

    shared = {"$defs": {"s": {"type": "string"}},
              "properties": {f"p{i}": {"$ref": "#/$defs/s"} for i in range(100)}}
    assert expansion(shared, 10**6) == 1 + 100 * 2
    tree = {"$defs": {"n": {"properties": {"c": {"items": {"$ref": "#/$defs/n"}}}}},
            "$ref": "#/$defs/n"}
    assert expansion(tree, 10**6) == 5
