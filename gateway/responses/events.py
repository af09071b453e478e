"""A chat completion stream rewritten as the Responses event sequence.

``response.created`` and ``response.in_progress``; per output item ``output_item.added``,
its deltas (``output_text.delta`` or ``function_call_arguments.delta``), its ``done``
events; then ``response.completed`` (or ``response.incomplete``) with the whole response.
An error in the chat stream becomes an ``error`` event followed by ``response.failed``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.responses.items import call_item, message_item, new_id, text_part
from gateway.structured.outcome import EXTENSION

Build = Callable[..., dict[str, Any]]


@dataclass
class _Item:
    item: dict[str, Any]
    index: int
    text: list[str] = field(default_factory=list)


@dataclass
class ResponseEvents:
    """Turns chat chunks into Responses events; ``response`` holds the finished one."""

    build: Build  # response_object with the request bound: (output, **fields) -> response
    sequence: int = 0
    response: dict[str, Any] | None = None
    _items: list[_Item] = field(default_factory=list)
    _calls: dict[int, _Item] = field(default_factory=dict)
    _message: _Item | None = None
    _finish: str | None = None
    _usage: dict[str, Any] | None = None
    _verdict: Any = None

    def start(self) -> Iterator[dict[str, Any]]:
        skeleton = self.build([], status="in_progress")
        yield self._event("response.created", response=skeleton)
        yield self._event("response.in_progress", response=skeleton)

    def feed(self, chunk: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if EXTENSION in chunk:
            self._verdict = chunk[EXTENSION]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                yield from self._text(delta["content"])
            for call in delta.get("tool_calls") or ():
                yield from self._call(call)
            self._finish = choice.get("finish_reason") or self._finish

    def finish(self) -> Iterator[dict[str, Any]]:
        yield from self._close_message()
        for item in self._calls.values():
            yield from self._close_call(item)
        if not self._items:  # an empty answer is still one (empty) message
            yield from self._text("")
            yield from self._close_message()
        response = self.build([i.item for i in self._items], usage=self._usage,
                              finish_reason=self._finish)
        if self._verdict is not None:
            response[EXTENSION] = self._verdict
        self.response = response
        kind = "response.incomplete" if response["status"] == "incomplete" else (
            "response.completed")
        yield self._event(kind, response=response)

    def fail(self, error: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield self._event("error", code=error.get("code"), message=error.get("message", ""),
                          param=error.get("param"))
        failed = self.build([i.item for i in self._items], status="failed")
        # The response's error code is one of OpenAI's few; the error event has ours.
        code = "rate_limit_exceeded" if error.get("code") == "rate_limited" else "server_error"
        failed["error"] = {"code": code, "message": error.get("message", "")}
        yield self._event("response.failed", response=failed)

    def _text(self, delta: str) -> Iterator[dict[str, Any]]:
        if self._message is None:
            self._message = self._add(message_item(new_id("msg"), None, "in_progress"))
            yield self._event("response.output_item.added", output_index=self._message.index,
                              item=self._message.item)
            yield self._event("response.content_part.added", item_id=self._message.item["id"],
                              output_index=self._message.index, content_index=0,
                              part=text_part(""))
        self._message.text.append(delta)
        if delta:
            yield self._event("response.output_text.delta", item_id=self._message.item["id"],
                              output_index=self._message.index, content_index=0,
                              delta=delta, logprobs=[])

    def _close_message(self) -> Iterator[dict[str, Any]]:
        current, self._message = self._message, None
        if current is None:
            return
        text = "".join(current.text)
        where = {"item_id": current.item["id"], "output_index": current.index,
                 "content_index": 0}
        yield self._event("response.output_text.done", **where, text=text, logprobs=[])
        yield self._event("response.content_part.done", **where, part=text_part(text))
        current.item.update(message_item(current.item["id"], text, "completed"))
        yield self._event("response.output_item.done", output_index=current.index,
                          item=current.item)

    def _call(self, delta: dict[str, Any]) -> Iterator[dict[str, Any]]:
        index = int(delta.get("index") or 0)
        function = delta.get("function") or {}
        if index not in self._calls:
            yield from self._close_message()
            item = call_item(new_id("fc"), delta.get("id") or new_id("call"),
                             function.get("name") or "", "", "in_progress")
            self._calls[index] = self._add(item)
            yield self._event("response.output_item.added", output_index=len(self._items) - 1,
                              item=dict(item))
        current = self._calls[index]
        if function.get("arguments"):
            current.text.append(function["arguments"])
            yield self._event("response.function_call_arguments.delta",
                              item_id=current.item["id"], output_index=current.index,
                              delta=function["arguments"])

    def _close_call(self, current: _Item) -> Iterator[dict[str, Any]]:
        arguments = "".join(current.text)
        current.item.update(arguments=arguments, status="completed")
        yield self._event("response.function_call_arguments.done", item_id=current.item["id"],
                          output_index=current.index, name=current.item["name"],
                          arguments=arguments)
        yield self._event("response.output_item.done", output_index=current.index,
                          item=current.item)

    def _add(self, item: dict[str, Any]) -> _Item:
        added = _Item(item, len(self._items))
        self._items.append(added)
        return added

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event


def sse_event(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


async def chat_chunks(stream: AsyncIterator[bytes]) -> AsyncGenerator[dict[str, Any]]:
    """The gateway's own chat SSE, parsed back into chunks, up to ``[DONE]``."""
    pending = b""
    async for piece in stream:
        pending += piece
        *events, pending = pending.split(b"\n\n")
        for raw in events:
            for line in raw.splitlines():
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                yield json.loads(data)
