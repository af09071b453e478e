from __future__ import annotations

from typing import Any

import pytest

from gateway.structured.bounds import SchemaBounds, check_schema
from gateway.structured.errors import SchemaRejected
from gateway.structured.refs import RefSite, check_cycles, resolve

PATHS = frozenset({(), ("$defs", "a"), ("$defs", "a/b"), ("items", 0), ("properties", "0")})


def test_resolve_local_pointers() -> None:
    assert resolve("#", ("x",), {}, PATHS) == ()
    assert resolve("#/$defs/a", (), {}, PATHS) == ("$defs", "a")
    assert resolve("#/$defs/a~1b", (), {}, PATHS) == ("$defs", "a/b")
    assert resolve("#/%24defs/a", (), {}, PATHS) == ("$defs", "a")
    assert resolve("#/items/0", (), {}, PATHS) == ("items", 0)
    assert resolve("#/properties/0", (), {}, PATHS) == ("properties", "0")


def test_resolve_anchors() -> None:
    assert resolve("#addr", (), {"addr": ("$defs", "a")}, PATHS) == ("$defs", "a")
    with pytest.raises(SchemaRejected, match="names no \\$anchor"):
        resolve("#nowhere", (), {}, PATHS)


def test_refs_into_data_or_nowhere_are_refused() -> None:
    with pytest.raises(SchemaRejected, match="does not point at a subschema"):
        resolve("#/enum/0", (), {}, PATHS)
    with pytest.raises(SchemaRejected, match="does not point at a subschema"):
        resolve("#/$defs/missing", (), {}, PATHS)


def test_cycle_through_two_definitions() -> None:
    sites = [
        RefSite(("$defs", "a", "properties", "b"), ("$defs", "b")),
        RefSite(("$defs", "b", "items"), ("$defs", "a")),
    ]
    with pytest.raises(SchemaRejected, match="recursive"):
        check_cycles(sites)


def test_chains_and_shared_targets_are_not_cycles() -> None:
    sites = [
        RefSite(("properties", "x"), ("$defs", "a")),
        RefSite(("properties", "y"), ("$defs", "a")),
        RefSite(("$defs", "a", "properties", "z"), ("$defs", "b")),
    ]
    check_cycles(sites)


def check(schema: dict[str, Any]) -> None:
    check_schema(schema, SchemaBounds())


def test_recursion_through_an_anchor_is_refused() -> None:
    schema = {
        "$defs": {"list": {"$anchor": "list", "properties": {"next": {"$ref": "#list"}}}},
        "$ref": "#list",
    }
    with pytest.raises(SchemaRejected, match="recursive"):
        check(schema)


def test_ref_to_an_ancestor_is_refused() -> None:
    with pytest.raises(SchemaRejected, match="recursive"):
        check({"properties": {"self": {"$ref": "#"}}})


def test_dynamic_refs_are_checked_too() -> None:
    with pytest.raises(SchemaRejected, match="points outside the schema"):
        check({"$dynamicRef": "https://example.com/meta#items"})


def test_shared_definitions_pass() -> None:
    schema = {
        "$defs": {
            "money": {"type": "object", "properties": {"amount": {"type": "number"},
                                                       "currency": {"$ref": "#/$defs/ccy"}}},
            "ccy": {"type": "string", "enum": ["EUR", "USD"]},
        },
        "properties": {"price": {"$ref": "#/$defs/money"}, "tax": {"$ref": "#/$defs/money"}},
    }
    check(schema)
