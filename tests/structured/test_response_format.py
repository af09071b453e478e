from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import GatewayError
from gateway.structured.errors import InvalidResponseFormat, SchemaRejected, UnknownSchema
from gateway.structured.response_format import RequestedSchema, resolve_response_format
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.validation import ValidatorCache


def resolve(value: object, registry: SchemaRegistry, cache: ValidatorCache) -> RequestedSchema:
    requested = resolve_response_format(value, registry, cache)
    assert requested is not None
    return requested


def error(value: object, registry: SchemaRegistry, cache: ValidatorCache) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        resolve_response_format(value, registry, cache)
    assert info.value.status_code == 400
    return info.value


@pytest.mark.parametrize("value", [None, {"type": "text"}])
def test_plain_text(value: object, registry: SchemaRegistry, cache: ValidatorCache) -> None:
    assert resolve_response_format(value, registry, cache) is None


def test_json_object(registry: SchemaRegistry, cache: ValidatorCache) -> None:
    requested = resolve({"type": "json_object"}, registry, cache)
    assert (requested.name, requested.source, requested.label) == (
        "json_object", "json_object", "json_object",
    )
    assert requested.schema.problems({"any": "object"}) == []
    assert requested.schema.problems([1]) != []


def test_named_reference_uses_the_registered_schema(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    requested = resolve({"type": "json_schema", "json_schema": {"name": "ticket"}}, registry, cache)
    assert requested.schema is registry.require("ticket")
    assert requested.source == "registered" and requested.label == "ticket"


def test_inline_schema(registry: SchemaRegistry, cache: ValidatorCache) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    spec = {"name": "address", "schema": schema, "strict": True}
    requested = resolve({"type": "json_schema", "json_schema": spec}, registry, cache)
    assert requested.name == "address" and requested.source == "inline"
    assert requested.label == "inline" and requested.strict is True
    assert requested.schema.problems({"city": "Lyon"}) == []


def test_inline_copy_of_a_registered_schema_counts_as_registered(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    ticket = registry.require("ticket")
    spec: dict[str, Any] = {"name": "ticket", "schema": dict(ticket.schema)}
    assert resolve({"type": "json_schema", "json_schema": spec}, registry, cache).label == "ticket"
    spec["schema"] = {"type": "object"}
    assert resolve({"type": "json_schema", "json_schema": spec}, registry, cache).label == "inline"


def test_hostile_inline_schema_names_the_param(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    spec = {"name": "x", "schema": {"type": "string", "pattern": "(?<=a)b"}}
    problem = error({"type": "json_schema", "json_schema": spec}, registry, cache)
    assert isinstance(problem, SchemaRejected)
    assert problem.param == "response_format.json_schema.schema"
    assert "look-arounds" in problem.message


def test_unknown_schema_name(registry: SchemaRegistry, cache: ValidatorCache) -> None:
    problem = error({"type": "json_schema", "json_schema": {"name": "nope"}}, registry, cache)
    assert isinstance(problem, UnknownSchema)
    assert problem.param == "response_format.json_schema.name"


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("json", "response_format"),
        ({"type": "xml"}, "response_format.type"),
        ({"type": "structural_tag", "format": {}}, "response_format.type"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": {"schema": {}}},
         "response_format.json_schema.name"),
        ({"type": "json_schema", "json_schema": {"name": "bad name", "schema": {}}},
         "response_format.json_schema.name"),
        ({"type": "json_schema", "json_schema": {"name": "x" * 65, "schema": {}}},
         "response_format.json_schema.name"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": "yes"}},
         "response_format.json_schema.strict"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": True}},
         "response_format.json_schema.schema"),
    ],
)
def test_malformed_response_formats(
    value: object, param: str, registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    problem = error(value, registry, cache)
    assert problem.param == param
    assert isinstance(problem, InvalidResponseFormat | SchemaRejected)
