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


def test_invalid_regex_is_rejected() -> None:
    assert "not a valid regular expression" in rejected({"pattern": "([a-z]"})


@pytest.mark.parametrize("value", [True, False, [], "schema", 3])
def test_schema_must_be_an_object(value: object) -> None:
    assert "must be a JSON object" in rejected(value)


def test_schema_must_be_plain_json() -> None:
    assert "not plain JSON" in rejected({"minimum": float("nan")})
    assert "not plain JSON" in rejected({"const": object()})


def test_a_one_megabyte_schema_is_refused_by_size() -> None:
    # How fast: benchmarks/bench_hostile_schemas.py.
    schema = {"type": "object", "description": "x" * 1_000_000}
    message = rejected(schema)
    assert "1000034 bytes" in message and "limit is 65536" in message


def test_a_one_megabyte_schema_of_many_parts_is_refused_by_size() -> None:
    schema = {"type": "string", "enum": [f"value-{i:07d}" for i in range(80_000)]}
    assert "bytes as compact JSON" in rejected(schema)


def test_size_counts_utf8_bytes() -> None:
    schema = {"description": "é" * 40}
    size = len(canonical_json(schema, BOUNDS).encode())
    assert "bytes as compact JSON" in rejected(schema, SchemaBounds(max_schema_bytes=size - 1))
    check_schema(schema, SchemaBounds(max_schema_bytes=size))


def test_fifty_levels_of_nesting_are_refused() -> None:
    message = rejected(nested(50))
    assert "more than 16 levels deep" in message and "/properties/child" in message


def test_nesting_at_the_limit_passes() -> None:
    check_schema(nested(16), BOUNDS)
    assert "more than 16 levels" in rejected(nested(17))


def test_deep_data_inside_a_schema_is_refused() -> None:
    deep: Any = []
    for _ in range(70):
        deep = [deep]
    assert "nests more than 64 levels" in rejected({"default": deep})


def test_property_count_is_bounded_across_the_schema() -> None:
    half = {f"p{i}": {"type": "string"} for i in range(150)}
    schema = {"properties": {"a": {"properties": half}, "b": {"properties": half}}}
    assert "more than 256 properties" in rejected(schema)
    check_schema({"properties": half}, BOUNDS)


def test_a_ten_thousand_value_enum_is_refused() -> None:
    message = rejected({"enum": list(range(10_000))})
    assert "10000 values; the limit is 1000" in message


def test_refs_are_bounded() -> None:
    schema = {
        "$defs": {"s": {"type": "string"}},
        "properties": {f"p{i}": {"$ref": "#/$defs/s"} for i in range(5)},
    }
    assert "more than 4 references" in rejected(schema, SchemaBounds(max_refs=4))
    check_schema(schema, SchemaBounds(max_refs=5))


@pytest.mark.parametrize(
    "ref",
    [
        "https://example.com/schemas/address.json",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "address.json",
        "urn:uuid:0a4e2b6e-8c1f-4c1e-9b7e-4a3f2f6f1d2c",
    ],
)
def test_remote_refs_are_refused(ref: str) -> None:
    assert "points outside the schema" in rejected({"$ref": ref})


def test_recursive_refs_are_refused() -> None:
    tree = {
        "$defs": {"node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
        }}},
        "$ref": "#/$defs/node",
    }
    assert "is recursive" in rejected(tree)


def test_catastrophic_patterns_are_refused() -> None:
    assert "exponential time" in rejected({"type": "string", "pattern": "^(a+)+$"})
    message = rejected({"patternProperties": {"(.*)*": {}}})
    assert "exponential time" in message and "'(.*)*'" in message
    assert "exponential time" in rejected(
        {"propertyNames": {"pattern": "^(\\w+\\s?)+$"}}
    )


@pytest.mark.timeout(30)  # a hang guard, not a speed target
def test_pattern_length_is_bounded() -> None:
    hostile = "x".join(["\\d+"] * 250)  # many repeats, all separated: slow to analyse
    schema = {"properties": {f"p{i}": {"pattern": hostile} for i in range(4)}}
    check_schema(schema, BOUNDS)
    schema["properties"]["p4"] = {"pattern": hostile}
    assert "exceed 4096 characters in all" in rejected(schema)


def test_nested_schema_ids_are_refused() -> None:
    message = rejected({"$defs": {"a": {"$id": "https://example.com/a", "type": "string"}}})
    assert "embedded schema resources" in message
    check_schema({"$id": "https://example.com/root", "type": "string"}, BOUNDS)


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
