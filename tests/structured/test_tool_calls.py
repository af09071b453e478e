"""Checking and classifying tool calls: one verdict per answer, every call covered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.structured.deviations import DeviationKind
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.tool_calls import ToolCall, check_tool_answer
from gateway.structured.tools import ToolSet, parse_tools
from gateway.structured.validation import CompiledSchema, ValidatorCache
from tests.structured.test_tools import function

GOOD = '{"category": "billing", "priority": "high", "escalate": true}'
NAMED = {"type": "function", "function": {"name": "route_ticket"}}


def tools(registry: SchemaRegistry, cache: ValidatorCache, choice: Any = "auto",
          parallel: bool = True) -> ToolSet:
    parsed = parse_tools({"tools": [function("route_ticket"), function("lookup", {
        "type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]})],
        "tool_choice": choice, "parallel_tool_calls": parallel}, registry, cache)
    assert parsed is not None
    return parsed


def calls(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(pairs)]


@pytest.fixture
def offered(registry: SchemaRegistry, cache: ValidatorCache) -> ToolSet:
    return tools(registry, cache)


def test_a_valid_call_is_valid_with_its_arguments(offered: ToolSet) -> None:
    verdict = check_tool_answer(calls(("route_ticket", GOOD)), None, "tool_calls", offered)
    assert verdict.valid and verdict.calls is not None
    assert verdict.calls[0].arguments["category"] == "billing"
    assert verdict.calls[0].raw == GOOD and verdict.calls[0].id == "c0"


def test_parallel_calls_are_one_check(offered: ToolSet) -> None:
    verdict = check_tool_answer(calls(("route_ticket", GOOD), ("lookup", '{"id": "x"}')),
                                None, "tool_calls", offered)
    assert verdict.kind is DeviationKind.TOOL_ARGUMENTS_SCHEMA_VIOLATION
    assert verdict.keyword == "type"
    assert verdict.messages[0].startswith("tool_calls[1] (lookup)")


def test_prose_is_valid_under_auto(offered: ToolSet) -> None:
    assert check_tool_answer(None, "Happy to help!", "stop", offered).valid
    assert check_tool_answer([], "Happy to help!", "stop", offered).valid


@pytest.mark.parametrize("choice", ["required", NAMED])
def test_no_call_where_one_is_required(registry: SchemaRegistry, cache: ValidatorCache,
                                       choice: Any) -> None:
    verdict = check_tool_answer(None, "Happy to help!", "stop", tools(registry, cache, choice))
    assert verdict.kind is DeviationKind.TOOL_CALL_MISSING
    assert "route_ticket" in verdict.messages[0]


def test_a_call_under_none_is_unexpected(registry: SchemaRegistry,
                                         cache: ValidatorCache) -> None:
    none = tools(registry, cache, "none")
    assert check_tool_answer(calls(("route_ticket", GOOD)), None, "tool_calls",
                             none).kind is DeviationKind.TOOL_CALL_UNEXPECTED
    assert check_tool_answer(None, "plain words", "stop", none).valid


def test_several_calls_without_parallel_calls(registry: SchemaRegistry,
                                              cache: ValidatorCache) -> None:
    single = tools(registry, cache, parallel=False)
    verdict = check_tool_answer(calls(("route_ticket", GOOD), ("route_ticket", GOOD)), None,
                                "tool_calls", single)
    assert verdict.kind is DeviationKind.TOOL_CALL_UNEXPECTED


def test_unknown_function_and_a_function_other_than_the_named_one(
    registry: SchemaRegistry, cache: ValidatorCache, offered: ToolSet
) -> None:
    verdict = check_tool_answer(calls(("delete_all", "{}")), None, "tool_calls", offered)
    assert verdict.kind is DeviationKind.TOOL_UNKNOWN and "was not offered" in verdict.messages[0]
    named = tools(registry, cache, NAMED)
    verdict = check_tool_answer(calls(("lookup", '{"id": 1}')), None, "tool_calls", named)
    assert verdict.kind is DeviationKind.TOOL_UNKNOWN and "names" in verdict.messages[0]


@pytest.mark.parametrize(("arguments", "finish", "kind"), [
    ('{"category": "billing", "prio', "length", DeviationKind.TOOL_ARGUMENTS_TRUNCATED),
    ('{"category": billing}', "tool_calls", DeviationKind.TOOL_ARGUMENTS_INVALID_JSON),
    ("[1]", "tool_calls", DeviationKind.TOOL_ARGUMENTS_SCHEMA_VIOLATION),
    ('{"category": "billing"}', "tool_calls", DeviationKind.TOOL_ARGUMENTS_SCHEMA_VIOLATION),
])
def test_broken_arguments(offered: ToolSet, arguments: str, finish: str,
                          kind: DeviationKind) -> None:
    verdict = check_tool_answer(calls(("route_ticket", arguments)), None, finish, offered)
    assert verdict.kind is kind and not verdict.valid


def test_schema_violation_names_the_keyword(offered: ToolSet) -> None:
    verdict = check_tool_answer(calls(("route_ticket", '{"category": "billing"}')), None,
                                "tool_calls", offered)
    assert verdict.keyword == "required"


@pytest.mark.parametrize("content", [
    f'<tool_call>\n{{"name": "route_ticket", "arguments": {GOOD}}}\n</tool_call>',
    f'Sure: ```json\n{{"name": "route_ticket", "parameters": {GOOD}}}\n```',
    f'{{"name": "route_ticket", "arguments": {json.dumps(GOOD)}}}',
])
def test_a_call_left_in_content_is_found_and_extractable(offered: ToolSet, content: str) -> None:
    verdict = check_tool_answer(None, content, "stop", offered)
    assert verdict.kind is DeviationKind.TOOL_CALL_IN_CONTENT
    assert verdict.extracted == (ToolCall("route_ticket", json.loads(GOOD)),)


def test_a_bare_arguments_object_is_the_named_call_in_content(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    verdict = check_tool_answer(None, f"Here you go: {GOOD}", "stop",
                                tools(registry, cache, NAMED))
    assert verdict.kind is DeviationKind.TOOL_CALL_IN_CONTENT
    assert verdict.extracted is not None and verdict.extracted[0].name == "route_ticket"


def test_an_invalid_call_in_content_is_not_extractable(offered: ToolSet) -> None:
    verdict = check_tool_answer(
        None, '<tool_call>{"name": "route_ticket", "arguments": {"category": "x"}}</tool_call>',
        "stop", offered)
    assert verdict.kind is DeviationKind.TOOL_CALL_IN_CONTENT and verdict.extracted is None
    assert any("category" in m for m in verdict.messages)


@pytest.mark.parametrize(("finish", "kind"), [
    ("length", DeviationKind.TOOL_ARGUMENTS_TRUNCATED),
    ("stop", DeviationKind.TOOL_ARGUMENTS_INVALID_JSON),
])
def test_a_broken_call_in_content(offered: ToolSet, finish: str, kind: DeviationKind) -> None:
    text = '<tool_call>\n{"name": "route_ticket", "arguments": {"category": "bill'
    assert check_tool_answer(None, text, finish, offered).kind is kind


def test_prose_is_checked_against_the_response_format_schema(
    offered: ToolSet, ticket: CompiledSchema
) -> None:
    assert check_tool_answer(None, GOOD, "stop", offered, ticket).valid
    verdict = check_tool_answer(None, "no JSON here", "stop", offered, ticket)
    assert verdict.kind is DeviationKind.NOT_JSON
