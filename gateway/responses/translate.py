"""A Responses request as a chat completion request, and a chat answer as a response."""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from gateway.errors import InvalidRequest
from gateway.protocol import ChatCompletionRequest
from gateway.responses.wire import ResponsesRequest

# Responses tool types other than ``function`` run on OpenAI's side (web and file search,
# code interpreter, computer use, MCP, image generation, shell): none is served here.
_FUNCTION = "function"


def chat_request(request: ResponsesRequest, messages: list[dict[str, Any]]
                 ) -> ChatCompletionRequest:
    """The chat completion that answers ``request``, given the conversation so far."""
    request.refuse_what_cannot_be_honoured()
    if request.instructions:
        messages = [{"role": "system", "content": request.instructions}, *messages]
    body: dict[str, Any] = {**request.passed_on(), "model": request.model,
                            "messages": messages, "stream": request.stream}
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                         ("top_p", "top_p"), ("seed", "seed"), ("user", "user"),
                         ("parallel_tool_calls", "parallel_tool_calls"), ("retry", "retry")):
        value = getattr(request, ours)
        if value is not None:
            body[theirs] = value
    response_format = _response_format(request.text)
    if response_format is not None:
        body["response_format"] = response_format
    if request.tools:
        body["tools"] = [_tool(tool, index) for index, tool in enumerate(request.tools)]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "input"
        raise InvalidRequest(f"{where}: {error['msg']}", param="input") from None


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format`` (the schema checks happen there)."""
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise InvalidRequest("text.format must be an object", param="text.format")
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise InvalidRequest(f"text.format.type {kind!r} is not supported: use text, "
                             "json_object or json_schema", param="text.format.type")
    inner = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
    return {"type": "json_schema", "json_schema": inner}


def _tool(tool: Any, index: int) -> dict[str, Any]:
    where = f"tools[{index}]"
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != _FUNCTION:
        raise InvalidRequest(
            f"{where} has type {kind!r}: hosted tools (web and file search, code "
            "interpreter, computer use, MCP, ...) are not served; function tools are",
            param=f"{where}.type", code="unsupported_tool")
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                if tool.get(k) is not None}
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == _FUNCTION and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(f"tool_choice {choice.get('type')!r} is not supported: use auto, "
                         "none, required or a function", param="tool_choice")


def response_object(
    response_id: str, request: ResponsesRequest, model: str, output: list[dict[str, Any]],
    *, usage: dict[str, Any] | None = None, finish_reason: str | None = "stop",
    created_at: int | None = None, status: str | None = None,
) -> dict[str, Any]:
    """OpenAI's response object for an answer (``status`` in_progress while streaming)."""
    incomplete = finish_reason == "length"
    return {
        "id": response_id, "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": status or ("incomplete" if incomplete else "completed"),
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.instructions, "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {}, "model": model, "output": output,
        "parallel_tool_calls": (request.parallel_tool_calls
                                if request.parallel_tool_calls is not None else True),
        "previous_response_id": request.previous_response_id,
        "store": request.store, "temperature": request.temperature, "top_p": request.top_p,
        "text": {"format": ((request.text or {}).get("format") or {"type": "text"})},
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": request.tools or [], "truncation": "disabled", "user": request.user,
        "usage": _usage(usage),
    }


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(
        usage.get("completion_tokens") or 0)
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}
