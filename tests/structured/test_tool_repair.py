"""Repairs for tool calls: the constrained call's grammar, the re-ask turns, the contract."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from gateway.structured.attempts import Answer
from gateway.structured.contract import ToolContract
from gateway.structured.deviations import DeviationKind, Verdict
from gateway.structured.retry import Strategy
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.tool_calls import check_tool_answer
from gateway.structured.tool_repair import call_schema, reask_messages
from gateway.structured.tools import parse_tools
from gateway.structured.validation import ValidatorCache
from tests.structured.test_tool_calls import GOOD, NAMED, calls, tools
from tests.structured.test_tools import function

ARGS = json.loads(GOOD)
WITH_REFS = {"type": "object", "$defs": {"id": {"type": "integer", "minimum": 1}},
             "properties": {"id": {"$ref": "#/$defs/id"}}, "required": ["id"]}


def contract(registry: SchemaRegistry, cache: ValidatorCache, choice: Any = NAMED) -> ToolContract:
    return ToolContract(tools(registry, cache, choice))


def test_the_call_schema_of_one_function(registry: SchemaRegistry, cache: ValidatorCache) -> None:
    schema = call_schema(tools(registry, cache, NAMED))
    jsonschema.validate({"name": "route_ticket", "arguments": ARGS}, schema)
    assert not jsonschema.Draft202012Validator(schema).is_valid(
        {"name": "lookup", "arguments": ARGS})


def test_the_call_schema_of_several_functions_keeps_their_refs(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    body = {"tools": [function("route_ticket"), function("lookup", WITH_REFS)]}
    several = parse_tools(body, registry, cache)
    assert several is not None
    schema = call_schema(several)
    check = jsonschema.Draft202012Validator(schema)
    assert check.is_valid({"name": "lookup", "arguments": {"id": 3}})
    assert not check.is_valid({"name": "lookup", "arguments": {"id": 0}})
    assert check.is_valid({"name": "route_ticket", "arguments": ARGS})


def test_reask_answers_each_broken_call_with_a_tool_message(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    offered = tools(registry, cache)
    raw = calls(("route_ticket", GOOD), ("lookup", '{"id": "x"}'))
    verdict = check_tool_answer(raw, None, "tool_calls", offered)
    messages = reask_messages([{"role": "user", "content": "hi"}], None, raw, verdict, offered)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[1]["tool_calls"][1]["id"] == "c1" and messages[1]["content"] is None
    assert messages[2]["tool_call_id"] == "c0" and messages[2]["content"].startswith("Not run")
    assert "tool_calls[1]" in messages[3]["content"]


def test_reask_after_no_call_names_the_function(registry: SchemaRegistry,
                                                cache: ValidatorCache) -> None:
    offered = tools(registry, cache, NAMED)
    verdict = check_tool_answer(None, "Sure thing", "stop", offered)
    messages = reask_messages([{"role": "user", "content": "hi"}], "Sure thing", None, verdict,
                              offered)
    assert messages[-2] == {"role": "assistant", "content": "Sure thing"}
    assert "Call the function route_ticket" in messages[-1]["content"]


def test_the_first_attempt_goes_with_auto(registry: SchemaRegistry, cache: ValidatorCache) -> None:
    body = {"messages": [], "tools": [], "tool_choice": NAMED, "stream": True,
            "response_format": {"type": "json_object"}}
    first = contract(registry, cache).first_body(body)
    assert first["tool_choice"] == "auto" and "stream" not in first
    assert "response_format" not in first


def test_a_constrained_attempt_is_made_and_read_by_the_gateway(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    tool = contract(registry, cache)
    first = {"messages": [{"role": "user", "content": "hi"}], "tools": [], "max_tokens": 500}
    missing = Verdict(valid=False, kind=DeviationKind.TOOL_CALL_MISSING)
    body = tool.retry_body(Strategy.CONSTRAINED, first, Answer(None, "stop", None, {}), missing,
                           chat=True)
    assert body["tool_choice"] == "none"
    assert body["response_format"]["type"] == "structural_tag"
    assert body["max_tokens"] < 500  # bounded by the grammar
    content = json.dumps({"name": "route_ticket", "arguments": ARGS})
    verdict = tool.check(Answer(content, "stop", None, {}), Strategy.CONSTRAINED)
    assert verdict.valid and verdict.calls is not None
    assert verdict.calls[0].arguments == ARGS
    assert tool.kept_content(Answer(content, "stop", None, {}), verdict) is None
