"""Responses items to chat messages and back: the one place the two vocabularies meet."""

from __future__ import annotations

import secrets
from typing import Any

from gateway.errors import InvalidRequest

_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_ROLES = frozenset({"user", "system", "developer", "assistant"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input items as stored and listed: each with an id and its ``type``."""
    named = []
    for item in items:
        kind = item.get("type") or "message"
        prefix = {"message": "msg", "function_call": "fc"}.get(kind, "item")
        named.append({**item, "type": kind, "id": item.get("id") or new_id(prefix)})
    return named


def as_items(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return value


def messages_of(items: list[dict[str, Any]], param: str = "input") -> list[dict[str, Any]]:
    """Chat messages for ``items``; consecutive function calls become one assistant turn."""
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _add_call(messages, item, where)
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": _text(item, "call_id", where),
                             "content": _output_text(item.get("output"), where)})
        elif kind == "reasoning" and not item.get("content"):
            continue  # an empty reasoning item replayed by a client says nothing to the model
        else:
            raise InvalidRequest(
                f"{where} has type {kind!r}, which this gateway does not take; it reads "
                "messages, function_call and function_call_output items",
                param=f"{where}.type", code="unsupported_item")
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise InvalidRequest(f"{where}.role must be one of {sorted(_ROLES)}",
                             param=f"{where}.role")
    return {"role": role, "content": _content(item.get("content"), f"{where}.content")}


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of text parts", param=where)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise InvalidRequest(
                f"{where}[{index}] has type {kind!r}: the served models read text only "
                "(input_text and output_text parts)", param=f"{where}[{index}].type",
                code="unsupported_content")
    return "".join(texts)


def _output_text(output: Any, where: str) -> str:
    return output if isinstance(output, str) else _content(output, f"{where}.output")


def _add_call(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    call = {"id": _text(item, "call_id", where), "type": "function",
            "function": {"name": _text(item, "name", where),
                         "arguments": _text(item, "arguments", where)}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and "tool_calls" in last:
        last["tool_calls"].append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key} must be a string", param=f"{where}.{key}")
    return value


def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat answer's message as Responses output: its text, then one item per call."""
    output: list[dict[str, Any]] = []
    content = message.get("content")
    calls = message.get("tool_calls") or []
    if content or not calls:
        output.append(message_item(new_id("msg"), content or "", "completed"))
    for call in calls:
        function = call.get("function") or {}
        output.append(call_item(new_id("fc"), call.get("id") or new_id("call"),
                                function.get("name", ""), function.get("arguments", ""),
                                "completed"))
    return output


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": content}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str
              ) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}
