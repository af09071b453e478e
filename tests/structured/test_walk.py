from __future__ import annotations

from gateway.structured.walk import describe, json_depth, pointer, walk


def test_walk_visits_subschemas_not_data() -> None:
    schema = {
        "type": "object",
        "properties": {"$ref": {"type": "string"}, "tags": {"items": {"enum": [{"a": 1}]}}},
        "enum": [{"properties": {"x": {}}}],
        "default": {"$ref": "#/nowhere"},
        "anyOf": [{"type": "object"}, True],
        "$defs": {"d": {"not": {"type": "null"}}},
    }
    paths = {node.path for node in walk(schema)}
    assert paths == {
        (),
        ("properties", "$ref"),
        ("properties", "tags"),
        ("properties", "tags", "items"),
        ("anyOf", 0),
        ("$defs", "d"),
        ("$defs", "d", "not"),
    }


def test_walk_depth_counts_schema_levels() -> None:
    schema = {"properties": {"a": {"properties": {"b": {"items": {"type": "string"}}}}}}
    depths = {node.path: node.depth for node in walk(schema)}
    assert depths[("properties", "a", "properties", "b", "items")] == 4


def test_pointer_escapes() -> None:
    assert pointer(()) == ""
    assert pointer(("properties", "a/b~c", "items", 0)) == "/properties/a~1b~0c/items/0"
    assert describe(()) == "the root"
    assert describe(("x",) * 100, limit=10).startswith("…")


def test_json_depth() -> None:
    assert json_depth(1, 10) == 0
    assert json_depth({"a": [1, {"b": []}]}, 10) == 4
    assert json_depth([[[[[]]]]], 2) == 3  # stops counting past the limit
