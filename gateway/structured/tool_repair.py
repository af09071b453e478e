"""Repairs for tool calls: the grammar of a constrained call, and the re-ask conversation.

Constrained: the gateway owns the grammar. The attempt asks the engine for one JSON
object ``{"name": <an allowed function>, "arguments": <its parameters>}`` under
``response_format`` (the same whitespace-bounded form as any constrained attempt), and the
gateway makes the ``tool_calls`` entry from it. The engine's own ``required`` and named
``tool_choice`` grammars were measured on the bundled model (docs/tools.md) and are not used:
they leave the whitespace unbounded, and the gateway's grammar is the one its checks know.

Re-ask, as Instructor does it: the broken calls go back as the assistant's turn, and each
call gets a ``tool`` message with what the validator found, so the model sees the problem
where it made it. An answer that made no call (or wrote it into its text) gets a user turn
that lists the problems and names the function to call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.structured.deviations import Verdict
from gateway.structured.reask import MAX_SCHEMA_CHARS, quote
from gateway.structured.tools import ToolSet

# Keywords whose value maps names to subschemas, and keywords whose value is data.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions",
                          "dependentSchemas"})
_DATA = frozenset({"enum", "const", "default", "examples", "required"})


def call_schema(tools: ToolSet) -> dict[str, Any]:
    """The schema of one call to an allowed function (``anyOf`` when several are allowed)."""
    allowed = tools.allowed
    if len(allowed) == 1:
        return _one_call(allowed[0].name, allowed[0].parameters.schema, "#/properties/arguments")
    return {"anyOf": [
        _one_call(tool.name, tool.parameters.schema, f"#/anyOf/{i}/properties/arguments")
        for i, tool in enumerate(allowed)]}


def _one_call(name: str, parameters: Mapping[str, Any], at: str) -> dict[str, Any]:
    return {"type": "object",
            "properties": {"name": {"const": name}, "arguments": _rebased(parameters, at)},
            "required": ["name", "arguments"], "additionalProperties": False}


def _rebased(schema: Any, at: str) -> Any:
    """``schema`` with its JSON-Pointer ``$ref``s moved under ``at`` (where it is nested)."""
    if isinstance(schema, list):
        return [_rebased(item, at) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str) and (value == "#" or value.startswith("#/")):
            kept[key] = at + value[1:]
        elif key in _DATA:
            kept[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            kept[key] = {name: _rebased(sub, at) for name, sub in value.items()}
        else:
            kept[key] = _rebased(value, at)
    return kept


def reask_messages(
    messages: Sequence[Mapping[str, Any]],
    content: str | None,
    tool_calls: object,
    verdict: Verdict,
    tools: ToolSet,
) -> list[dict[str, Any]]:
    """The conversation for the next attempt; ``messages`` is left unchanged."""
    history = [dict(message) for message in messages]
    calls = _returned_calls(tool_calls)
    if not calls:
        return [*history, {"role": "assistant", "content": quote(content)},
                {"role": "user", "content": _feedback(verdict, tools)}]
    results = [{"role": "tool", "tool_call_id": call["id"],
                "content": _call_feedback(index, verdict)} for index, call in enumerate(calls)]
    return [*history, {"role": "assistant", "content": content or None, "tool_calls": calls},
            *results]


def _returned_calls(tool_calls: object) -> list[dict[str, Any]]:
    """The engine's calls, each with an id (a tool message refers to its call by id)."""
    if not isinstance(tool_calls, Sequence) or isinstance(tool_calls, str):
        return []
    calls = []
    for index, call in enumerate(tool_calls):
        if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
            function = call["function"]
            arguments = function.get("arguments")
            calls.append({"id": str(call.get("id") or f"call_{index}"), "type": "function",
                          "function": {"name": str(function.get("name")),
                                       "arguments": quote(arguments if isinstance(arguments, str)
                                                          else json.dumps(arguments))}})
    return calls


def _call_feedback(index: int, verdict: Verdict) -> str:
    prefix = f"tool_calls[{index}]"
    mine = [m for m in verdict.messages if m.startswith(prefix)]
    if not mine and not any(m.startswith("tool_calls[") for m in verdict.messages):
        mine = list(verdict.messages)
    if not mine:
        return ("Not run: another call in this answer was invalid. Make every call again, "
                "corrected.")
    return "\n".join(["Error: the call is invalid and was not run.", *mine,
                      "Call the function again with corrected arguments."])


def _feedback(verdict: Verdict, tools: ToolSet) -> str:
    lines = ["Your previous answer is not valid. Problems:"]
    lines.extend(f"- {message}" for message in verdict.messages or ("unknown problem",))
    allowed = tools.allowed
    if len(allowed) == 1:
        lines.append(f"Call the function {allowed[0].name} as a tool call, with arguments "
                     "that match its parameters.")
        text = json.dumps(allowed[0].parameters.schema, separators=(",", ":"),
                          ensure_ascii=False)
        if len(text) <= MAX_SCHEMA_CHARS:
            lines.append(f"Its parameters, as JSON Schema: {text}")
    else:
        lines.append("Call one of the functions " + ", ".join(t.name for t in allowed[:10])
                     + " as a tool call, with arguments that match its parameters.")
    return "\n".join(lines)
