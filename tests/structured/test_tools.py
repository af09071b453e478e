"""Parsing ``tools`` and ``tool_choice``: what is offered, what is allowed, what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.structured.errors import InvalidToolSpec, SchemaRejected
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.tools import INLINE, MAX_TOOLS, parse_tools
from gateway.structured.validation import ValidatorCache
from tests.structured.conftest import SCHEMAS_DIR

TICKET = json.loads((SCHEMAS_DIR / "ticket.json").read_text())


def function(name: str, parameters: Any = TICKET) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "description": "d"}
    if parameters is not None:
        spec["parameters"] = parameters
    return {"type": "function", "function": spec}


def parse(registry: SchemaRegistry, cache: ValidatorCache, **body: Any) -> Any:
    return parse_tools(body, registry, cache)


def test_no_tools_is_none(registry: SchemaRegistry, cache: ValidatorCache) -> None:
    assert parse(registry, cache) is None
    assert parse(registry, cache, tools=[], tool_choice="auto") is None


def test_defaults_are_auto_and_parallel(registry: SchemaRegistry, cache: ValidatorCache) -> None:
    tools = parse(registry, cache, tools=[function("route_ticket"), function("other")])
    assert tools.mode == "auto" and tools.parallel and not tools.requires_call
    assert [t.name for t in tools.allowed] == ["route_ticket", "other"]
    assert tools.label == INLINE


@pytest.mark.parametrize("choice", ["required", {"type": "function",
                                                 "function": {"name": "route_ticket"}}])
def test_required_and_named_require_a_call(registry: SchemaRegistry, cache: ValidatorCache,
                                           choice: Any) -> None:
    tools = parse(registry, cache, tools=[function("route_ticket")], tool_choice=choice)
    assert tools.requires_call


def test_named_choice_allows_only_that_function(registry: SchemaRegistry,
                                                cache: ValidatorCache) -> None:
    tools = parse(registry, cache, tools=[function("a"), function("b")],
                  tool_choice={"type": "function", "function": {"name": "b"}})
    assert tools.mode == "named" and [t.name for t in tools.allowed] == ["b"]
    assert tools.name == "b"


def test_a_registered_schema_name_is_its_label(registry: SchemaRegistry,
                                               cache: ValidatorCache) -> None:
    tools = parse(registry, cache, tools=[function("ticket")])
    assert tools.label == "ticket"
    changed = parse(registry, cache, tools=[function("ticket", {"type": "object"})])
    assert changed.label == INLINE


def test_function_without_parameters_takes_an_empty_object(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    tools = parse(registry, cache, tools=[function("ping", None)])
    assert tools.allowed[0].parameters.problems({}) == []


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": "route"}, "tools"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [function("bad name!")]}, "tools[0].function.name"),
    ({"tools": [function("a"), function("a")]}, "tools[1].function.name"),
    ({"tools": [function("a", [1])]}, "tools[0].function.parameters"),
    ({"tools": [function("a")], "tool_choice": "always"}, "tool_choice"),
    ({"tools": [function("a")], "tool_choice": {"type": "function", "function": {"name": "b"}}},
     "tool_choice.function.name"),
    ({"tools": [function("a")], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [function(f"f{i}") for i in range(MAX_TOOLS + 1)]}, "tools"),
])
def test_malformed_tools_are_refused_naming_the_field(
    registry: SchemaRegistry, cache: ValidatorCache, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidToolSpec) as raised:
        parse_tools(body, registry, cache)
    assert raised.value.param == param


@pytest.mark.parametrize("parameters", [
    {"type": "object", "properties": {"a": {"$ref": "https://evil.example/schema.json"}}},
    {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=a)b"}}},
    {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}},
])
def test_hostile_parameters_are_refused_naming_the_tool(
    registry: SchemaRegistry, cache: ValidatorCache, parameters: dict[str, Any]
) -> None:
    body = {"tools": [function("ok"), function("evil", parameters)]}
    with pytest.raises(SchemaRejected) as raised:
        parse_tools(body, registry, cache)
    assert raised.value.param == "tools[1].function.parameters"
    assert "evil" in raised.value.message
