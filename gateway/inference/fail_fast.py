"""A structured request's first attempt, streamed and stopped once it cannot be valid.

Without it, a first answer that went wrong at its first token is still generated up to
``max_tokens`` before the retry starts. Here the attempt streams inside the gateway,
``PrefixCheck`` reads it as it comes, and leaving the stream early aborts the engine's
request (vLLM stops generating when its client goes away). An answer that runs to its
end is put back together as the engine's non-streaming response would have it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.inference.call import Call, Upstream
from gateway.structured.contract import StreamCheck
from gateway.structured.deviations import Verdict

# Request fields whose answer the assembled response would not carry: such requests run
# their first attempt whole.
UNSUPPORTED = ("logprobs", "top_logprobs", "echo", "functions", "prompt_logprobs", "best_of")
# Marks an answer the gateway stopped: no engine reason applies.
STOPPED = "stopped_early"


@dataclass
class _Assembled:
    """The non-streaming response, rebuilt from the stream's events."""

    chat: bool
    head: dict[str, Any] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    pieces: int = 0
    # Tool calls by index, as the engine's parser streams them (name first, then arguments).
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The call pieces of the last event: (index, the function's name if it came, arguments).
    new_calls: list[tuple[int, str | None, str]] = field(default_factory=list)

    def add(self, event: dict[str, Any]) -> str:
        """Takes one event; returns the text it adds (its call pieces go to ``new_calls``)."""
        self.new_calls = []
        if not self.head:
            self.head = {k: event[k] for k in ("id", "created", "model") if k in event}
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        piece = ""
        for choice in event.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            piece += (delta.get("content") if self.chat else choice.get("text")) or ""
            for call in delta.get("tool_calls") or () if self.chat else ():
                self._add_call(call)
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]
                self.extra = {k: v for k, v in choice.items()
                              if k not in ("index", "delta", "text", "finish_reason",
                                           "logprobs")}
        if piece:
            self.text.append(piece)
            self.pieces += 1
        return piece

    def _add_call(self, delta: Any) -> None:
        if not isinstance(delta, dict) or not isinstance(delta.get("index", 0), int):
            return
        index = delta.get("index", 0)
        function = delta.get("function") or {}
        name = function.get("name") if isinstance(function.get("name"), str) else None
        raw = function.get("arguments")
        arguments = raw if isinstance(raw, str) else ""
        call = self.calls.setdefault(index, {"id": None, "type": "function",
                                             "function": {"name": "", "arguments": ""}})
        call["id"] = call["id"] or delta.get("id")
        if name:
            call["function"]["name"] += name
        call["function"]["arguments"] += arguments
        self.new_calls.append((index, name, arguments))

    def response(self, *, stopped: bool) -> dict[str, Any]:
        content = "".join(self.text)
        finish = STOPPED if stopped else self.finish_reason
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if self.calls:
                message["content"] = content or None
                message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
            choice: dict[str, Any] = {
                "index": 0, "message": message,
                "logprobs": None, "finish_reason": finish, **self.extra}
        else:
            choice = {"index": 0, "text": content, "logprobs": None, "finish_reason": finish,
                      **self.extra}
        return {"id": self.head.get("id", ""),
                "object": "chat.completion" if self.chat else "text_completion",
                "created": self.head.get("created", int(time.time())),
                "model": self.head.get("model", ""), "choices": [choice],
                "usage": self._usage(stopped)}

    def _usage(self, stopped: bool) -> dict[str, Any]:
        if self.usage is not None:
            return self.usage
        # No usage seen (an engine without continuous usage stats, stopped early): one
        # token per streamed piece, as vLLM streams them.
        completion = self.pieces if stopped else 0
        return {"prompt_tokens": 0, "completion_tokens": completion,
                "total_tokens": completion}


async def watched_attempt(
    upstream: Upstream, call: Call, body: dict[str, Any], check: StreamCheck, chat: bool
) -> tuple[dict[str, Any], Verdict | None]:
    """Runs one attempt as a stream; the response, and the verdict if it was stopped."""
    stream_body = {**body, "stream": True,
                   "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    assembled = _Assembled(chat)
    async with upstream.events(call, stream_body) as events:
        async for event in events:
            piece = assembled.add(event)
            verdict = check.feed(piece) if piece else None
            for index, name, arguments in assembled.new_calls:
                verdict = verdict or check.feed_call(index, name, arguments)
            if verdict is not None:
                return assembled.response(stopped=True), verdict
    return assembled.response(stopped=False), None
