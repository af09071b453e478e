"""Checks the tool calls of one answer against the functions offered, and classifies them.

One check covers every call of an attempt (parallel calls included); the first call that
fails names the deviation kind, and every problem is listed, located as ``tool_calls[i]``.
A call must name a function that was offered (the named one, under a named
``tool_choice``), and its arguments must be a JSON object valid against that function's
``parameters``. ``required`` and a named choice need at least one call, ``none`` allows
none. Under ``auto`` an answer in prose is valid (checked against the ``response_format``
schema when the request has one as well).

Engines parse calls out of the model's text with a per-model parser (vLLM's ``hermes``,
``llama3_json``, ...). When the parser cannot read a call it leaves the whole text in
``content`` with no ``tool_calls``: such a call is found here (a ``<tool_call>`` block, or a
JSON object with ``name`` and ``arguments``/``parameters``) and reported as
``tool_call_in_content``, with the calls themselves in ``extracted`` when they are valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.structured import extraction
from gateway.structured.deviations import DeviationKind, Verdict, classify
from gateway.structured.tools import Tool, ToolSet
from gateway.structured.validation import CompiledSchema

# More calls than this in one answer are not checked one by one: the answer deviates.
MAX_CALLS = 32
# Markers models write around a call (Hermes/Qwen, Llama 3.1, Mistral).
_CALL_MARKERS = re.compile(r"<tool_call>|<\|python_tag\|>|\[TOOL_CALLS\]|<function=")
_ARGUMENT_KEYS = ("arguments", "parameters")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One checked call: the function, its parsed arguments, the engine's id if it had one."""

    name: str
    arguments: Any
    id: str | None = None
    # The arguments as the engine sent them, returned unchanged when they were valid.
    raw: str | None = None

    def as_openai(self, index: int, fallback_id: str) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry."""
        arguments = self.raw if self.raw is not None else json.dumps(
            self.arguments, ensure_ascii=False)
        return {"id": self.id or fallback_id, "type": "function", "index": index,
                "function": {"name": self.name, "arguments": arguments}}


def check_tool_answer(
    tool_calls: object,
    content: str | None,
    finish_reason: str | None,
    tools: ToolSet,
    content_schema: CompiledSchema | None = None,
) -> Verdict:
    """The verdict on one chat answer of a request that offered ``tools``; pure."""
    if isinstance(tool_calls, Sequence) and not isinstance(tool_calls, str) and tool_calls:
        return _check_calls(tool_calls, finish_reason, tools)
    return _check_content(content, finish_reason, tools, content_schema)


def check_calls(calls: Sequence[ToolCall], tools: ToolSet) -> Verdict:
    """The verdict on calls already parsed (found in the content, or decoded under a grammar)."""
    if not calls:
        return _missing(tools, "no call was made")
    if tools.mode == "none":
        return _deviation(DeviationKind.TOOL_CALL_UNEXPECTED,
                          'tool_choice is "none" but the answer calls a function')
    if len(calls) > 1 and not tools.parallel:
        return _deviation(DeviationKind.TOOL_CALL_UNEXPECTED,
                          f"parallel_tool_calls is false but the answer makes {len(calls)} "
                          "calls; make one call")
    problems: list[tuple[DeviationKind, str | None, str]] = []
    for index, call in enumerate(calls[:MAX_CALLS]):
        problems.extend(_call_problems(index, call, tools))
    if len(calls) > MAX_CALLS:
        problems.append((DeviationKind.TOOL_CALL_UNEXPECTED, None,
                         f"{len(calls)} calls in one answer; at most {MAX_CALLS} are checked"))
    if not problems:
        return Verdict(valid=True, calls=tuple(calls))
    kind, keyword, _ = problems[0]
    return Verdict(valid=False, kind=kind, keyword=keyword,
                   messages=tuple(message for _, _, message in problems))


def _check_calls(raw: Sequence[Any], finish_reason: str | None, tools: ToolSet) -> Verdict:
    calls: list[ToolCall] = []
    for index, item in enumerate(raw[: MAX_CALLS + 1]):
        parsed = _engine_call(item, finish_reason)
        if isinstance(parsed, Verdict):
            return _located(parsed, index)
        calls.append(parsed)
    return check_calls(calls, tools)


def _engine_call(item: Any, finish_reason: str | None) -> ToolCall | Verdict:
    """One ``tool_calls`` entry as the engine sent it: its arguments parsed."""
    function = item.get("function") if isinstance(item, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        return _deviation(DeviationKind.TOOL_UNKNOWN, "the call names no function")
    name, raw = function["name"], function.get("arguments")
    call_id = item.get("id") if isinstance(item.get("id"), str) else None
    if isinstance(raw, Mapping):  # some engines send the object itself
        return ToolCall(name, dict(raw), call_id)
    if not isinstance(raw, str):
        return _deviation(DeviationKind.TOOL_ARGUMENTS_INVALID_JSON,
                          f"{name}: the arguments are not a JSON string")
    try:
        arguments = extraction.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        if finish_reason == "length":
            return _deviation(DeviationKind.TOOL_ARGUMENTS_TRUNCATED,
                              f"{name}: the arguments were cut off at the token limit")
        return _deviation(DeviationKind.TOOL_ARGUMENTS_INVALID_JSON,
                          f"{name}: {extraction.syntax_error(raw.strip())}")
    return ToolCall(name, arguments, call_id, raw)


def _call_problems(
    index: int, call: ToolCall, tools: ToolSet
) -> list[tuple[DeviationKind, str | None, str]]:
    where = f"tool_calls[{index}] ({call.name[:64]})"
    allowed = {tool.name: tool for tool in tools.allowed}
    tool: Tool | None = allowed.get(call.name)
    if tool is None:
        offered = ", ".join(list(allowed)[:10])
        why = "is not the one tool_choice names" if call.name in tools.tools else "was not offered"
        return [(DeviationKind.TOOL_UNKNOWN, None,
                 f"{where}: the function {why}; call one of: {offered}")]
    if not isinstance(call.arguments, dict):
        return [(DeviationKind.TOOL_ARGUMENTS_SCHEMA_VIOLATION, "type",
                 f"{where}: the arguments must be a JSON object, not "
                 f"{type(call.arguments).__name__}")]
    return [(DeviationKind.TOOL_ARGUMENTS_SCHEMA_VIOLATION, problem.keyword,
             f"{where}: {problem}") for problem in tool.parameters.problems(call.arguments)]


def _check_content(
    content: str | None, finish_reason: str | None, tools: ToolSet,
    content_schema: CompiledSchema | None,
) -> Verdict:
    text = (content or "").strip()
    found = calls_in_content(text, tools)
    if found:
        checked = check_calls(found, tools)
        if tools.mode == "none":
            return checked
        message = ("the call was written into the answer's text instead of being made as a "
                   "tool call")
        return Verdict(valid=False, kind=DeviationKind.TOOL_CALL_IN_CONTENT,
                       keyword=checked.keyword, messages=(message, *checked.messages),
                       extracted=tuple(found) if checked.valid else None)
    if tools.mode != "none" and _CALL_MARKERS.search(text):
        if finish_reason == "length":
            return _deviation(DeviationKind.TOOL_ARGUMENTS_TRUNCATED,
                              "the call was cut off at the token limit")
        return _deviation(DeviationKind.TOOL_ARGUMENTS_INVALID_JSON,
                          f"the call is not valid JSON ({extraction.syntax_error(text)})")
    if tools.requires_call:
        return _missing(tools, "the answer is text" if text else "the answer is empty")
    if content_schema is not None:
        return classify(content, finish_reason, content_schema)
    return Verdict(valid=True)


def calls_in_content(text: str, tools: ToolSet) -> list[ToolCall]:
    """The calls written into ``text``: objects with a name and arguments, or, when one
    function is allowed, a bare object valid against its parameters."""
    objects = [found.value for found in extraction.find_objects(text)]
    calls = [call for value in objects if (call := _call_object(value)) is not None]
    if calls:
        return calls
    allowed = tools.allowed
    if tools.mode != "none" and len(allowed) == 1:
        only = allowed[0]
        for value in objects:
            if isinstance(value, dict) and not only.parameters.problems(value, limit=1):
                return [ToolCall(only.name, value)]
    return []


def _call_object(value: Any) -> ToolCall | None:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    for key in _ARGUMENT_KEYS:
        if key in value:
            arguments = value[key]
            if isinstance(arguments, str):  # OpenAI's own shape: arguments as a string
                try:
                    arguments = extraction.loads(arguments)
                except (ValueError, RecursionError):
                    return None
            return ToolCall(value["name"], arguments)
    return None


def _missing(tools: ToolSet, why: str) -> Verdict:
    want = (f"a call to {tools.named}" if tools.named is not None
            else "a call to one of: " + ", ".join(list(tools.tools)[:10]))
    return _deviation(DeviationKind.TOOL_CALL_MISSING,
                      f"tool_choice requires {want}, but {why}")


def _located(verdict: Verdict, index: int) -> Verdict:
    return Verdict(valid=False, kind=verdict.kind, keyword=verdict.keyword,
                   messages=tuple(f"tool_calls[{index}]: {m}" for m in verdict.messages))


def _deviation(kind: DeviationKind, message: str) -> Verdict:
    return Verdict(valid=False, kind=kind, messages=(message,))
