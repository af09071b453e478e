"""Fail fast for tool calls: a call is stopped once it can no longer be valid, never before."""

from __future__ import annotations

import json

import pytest

from gateway.structured.deviations import DeviationKind
from gateway.structured.early_tools import ToolCallCheck
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.validation import ValidatorCache
from tests.structured.test_tool_calls import GOOD, NAMED, tools


def feed(check: ToolCallCheck, name: str, arguments: str, index: int = 0) -> object:
    """The arguments a character at a time, as a stream may cut them."""
    verdict = check.feed_call(index, name, "")
    for char in arguments:
        verdict = verdict or check.feed_call(index, None, char)
    return verdict


def test_a_valid_call_is_never_stopped(registry: SchemaRegistry, cache: ValidatorCache) -> None:
    check = ToolCallCheck(tools(registry, cache))
    assert check.feed("Let me route that. ") is None
    assert feed(check, "route_ticket", GOOD) is None
    assert feed(check, "lookup", '{"id": 7}', index=1) is None


def test_a_function_not_allowed_is_stopped_at_its_name(registry: SchemaRegistry,
                                                        cache: ValidatorCache) -> None:
    verdict = ToolCallCheck(tools(registry, cache, NAMED)).feed_call(0, "lookup", "")
    assert verdict is not None and verdict.kind is DeviationKind.TOOL_UNKNOWN


@pytest.mark.parametrize(("arguments", "kind"), [
    ('{"category": "shipping"', DeviationKind.TOOL_ARGUMENTS_SCHEMA_VIOLATION),
    ('{"category": "billing",, ', DeviationKind.TOOL_ARGUMENTS_INVALID_JSON),
    ('{"colour": 1', DeviationKind.TOOL_ARGUMENTS_SCHEMA_VIOLATION),
])
def test_arguments_are_stopped_where_they_go_wrong(
    registry: SchemaRegistry, cache: ValidatorCache, arguments: str, kind: DeviationKind
) -> None:
    verdict = feed(ToolCallCheck(tools(registry, cache)), "route_ticket", arguments + ' "x": 1}')
    assert getattr(verdict, "kind", None) is kind
    assert getattr(verdict, "messages", ("",))[0].startswith("tool_calls[0] (route_ticket)")


def test_calls_under_none_and_a_second_call_without_parallel_calls(
    registry: SchemaRegistry, cache: ValidatorCache
) -> None:
    none = ToolCallCheck(tools(registry, cache, "none"))
    assert getattr(none.feed_call(0, "route_ticket", ""), "kind", None) is (
        DeviationKind.TOOL_CALL_UNEXPECTED)
    single = ToolCallCheck(tools(registry, cache, parallel=False))
    assert feed(single, "route_ticket", GOOD) is None
    assert getattr(single.feed_call(1, "route_ticket", ""), "kind", None) is (
        DeviationKind.TOOL_CALL_UNEXPECTED)


def test_every_valid_argument_prefix_passes(registry: SchemaRegistry,
                                            cache: ValidatorCache) -> None:
    """No valid call is stopped, whatever its spacing."""
    for text in (GOOD, json.dumps(json.loads(GOOD), indent=2), GOOD.replace(" ", "")):
        assert feed(ToolCallCheck(tools(registry, cache)), "route_ticket", text) is None
