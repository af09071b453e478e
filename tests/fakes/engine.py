"""A fake vLLM OpenAI server: real HTTP/ASGI protocol, scripted answers.

Answers are taken in order from a queue (``enqueue``); with an empty queue the
fake answers ``default_content``. Every request body it receives is recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class FakeAnswer:
    content: str
    finish_reason: str = "stop"
    delay: float = 0.0
    prompt_tokens: int = 10
    completion_tokens: int | None = None
    status: int = 200
    # Headers of an error answer (retry-after, ...).
    headers: dict[str, str] = field(default_factory=dict)
    # When set, the answer waits for it (requests held in flight until a test lets go).
    gate: asyncio.Event | None = None
    # How a stream ends: "done" ([DONE]), "cut" (the body just ends after the content),
    # or "error" (vLLM's own error event after the content, then [DONE]).
    stream_end: str = "done"
    # When set, a stream holds after this many pieces until its client leaves, as a long
    # generation would (the fake's ``stream_cancelled`` tells a test it left).
    hold_after: int | None = None
    # Calls as vLLM's tool parser returns them: (function name, arguments as a string).
    tool_calls: list[tuple[str, str]] | None = None


@dataclass
class FakeEngine:
    """State and behaviour of the fake; ``app`` is the ASGI application."""

    base_model: str = "base-model"
    default_content: str = "Hello! How can I help you today?"
    chunk_delay: float = 0.0
    # How long each answer from the default content takes.
    default_delay: float = 0.0
    answers: deque[FakeAnswer] = field(default_factory=deque)
    # Fixed answers per engine model id (an adapter version), when the queue is empty.
    contents: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    loras: dict[str, str] = field(default_factory=dict)
    lora_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    healthy: bool = True
    # When set, adapter loads wait for it (a load held in progress until a test lets go).
    load_gate: asyncio.Event | None = None
    max_model_len: int = 2048
    # When set, /v1 routes answer 401 without "Authorization: Bearer <api_key>", as vLLM's
    # --api-key does.
    api_key: str | None = None
    streams_cancelled: int = 0
    stream_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    # Non-streaming requests whose client (the gateway) went away while they were delayed.
    requests_cancelled: int = 0
    request_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    # vLLM's filesystem LoRA resolver: an unknown model NAME is loaded from
    # resolver_dir/NAME when its adapter_config.json names resolver_base (the engine's
    # --model argument) as base_model_name_or_path and is a LoRA; else 404, as vLLM does.
    resolver_dir: Path | None = None
    resolver_base: str | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def enqueue(self, content: str, **kwargs: Any) -> None:
        self.answers.append(FakeAnswer(content, **kwargs))

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self._health),
                Route("/metrics", self._metrics),
                Route("/v1/models", self._models),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/load_lora_adapter", self._load, methods=["POST"]),
                Route("/v1/unload_lora_adapter", self._unload, methods=["POST"]),
            ]
        )

    async def _health(self, request: Request) -> Response:
        return Response(status_code=200 if self.healthy else 503)

    async def _metrics(self, request: Request) -> Response:
        text = "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0.0\n"
        return PlainTextResponse(text)

    async def _models(self, request: Request) -> Response:
        names = [self.base_model, *self.loras]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "vllm",
                 "max_model_len": self.max_model_len} for n in names]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        return await self._answer(request, chat=True)

    async def _completions(self, request: Request) -> Response:
        return await self._answer(request, chat=False)

    def _refused(self, request: Request) -> Response | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return JSONResponse({"error": "Unauthorized"}, status_code=401)

    async def _answer(self, request: Request, *, chat: bool) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        self.requests.append(body)
        model = body.get("model")
        if model != self.base_model and model not in self.loras and not self._resolve(model):
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        answer = self.answers.popleft() if self.answers else FakeAnswer(
            self.contents.get(model, self.default_content), delay=self.default_delay)
        if answer.status != 200:
            return _error(answer.status, answer.content, "BadRequestError", None,
                          answer.headers)
        if answer.gate is not None:
            await answer.gate.wait()
        if answer.delay and not body.get("stream") and await _left(request, answer.delay):
            self.requests_cancelled += 1
            self.request_cancelled.set()
            return Response(status_code=499)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if body.get("stream"):
            return StreamingResponse(
                self._chunks(body, answer, chat), media_type="text/event-stream"
            )
        return JSONResponse(self._full(body, answer, chat))

    def _full(self, body: dict[str, Any], answer: FakeAnswer, chat: bool) -> dict[str, Any]:
        n = int(body.get("n") or 1)
        choices = [_choice(i, answer, chat) for i in range(n)]
        return {
            "id": f"cmpl-{next(self._ids)}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": _usage(answer, n),
        }

    async def _chunks(
        self, body: dict[str, Any], answer: FakeAnswer, chat: bool
    ) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for event in self._events(body, answer, chat):
                yield event
            finished = True
        finally:
            if not finished:
                self.streams_cancelled += 1
                self.stream_cancelled.set()

    async def _events(
        self, body: dict[str, Any], answer: FakeAnswer, chat: bool
    ) -> AsyncIterator[bytes]:
        cid = f"cmpl-{next(self._ids)}"
        kind = "chat.completion.chunk" if chat else "text_completion"
        pieces = _pieces(answer.content)
        # vLLM's continuous_usage_stats: every event carries the usage so far.
        running = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))
        for index, piece in enumerate(pieces):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            last = index == len(pieces) - 1
            finish = answer.finish_reason if last else None
            delta: dict[str, Any] = {"content": piece}
            if chat and index == 0:
                delta["role"] = "assistant"
            choice: dict[str, Any] = (
                {"index": 0, "delta": delta, "finish_reason": finish}
                if chat
                else {"index": 0, "text": piece, "finish_reason": finish}
            )
            event: dict[str, Any] = {"id": cid, "object": kind, "model": body["model"],
                                     "choices": [choice]}
            if running:
                completion = index + 1
                event["usage"] = {"prompt_tokens": answer.prompt_tokens,
                                  "completion_tokens": completion,
                                  "total_tokens": answer.prompt_tokens + completion}
            yield _sse(event)
            if answer.hold_after is not None and index + 1 >= answer.hold_after:
                await asyncio.Event().wait()  # until the client leaves (cancelled)
        for index, call in enumerate((answer.tool_calls or []) if chat else []):
            for delta in _call_deltas(index, call):
                yield _sse({"id": cid, "object": kind, "model": body["model"],
                            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        if answer.stream_end == "cut":
            return
        if answer.stream_end == "error":
            yield _sse({"error": {"object": "error", "message": "KV cache exhausted",
                                  "type": "InternalServerError", "param": None, "code": 500}})
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = _usage(answer, 1)
            yield _sse({"id": cid, "object": kind, "model": body["model"], "choices": [],
                        "usage": usage})
        yield b"data: [DONE]\n\n"

    def _resolve(self, model: object) -> bool:
        if self.resolver_dir is None or not isinstance(model, str) or "/" in model:
            return False
        folder = self.resolver_dir / model
        try:
            config = json.loads((folder / "adapter_config.json").read_text())
        except (OSError, ValueError):
            return False
        if (config.get("base_model_name_or_path") != self.resolver_base
                or config.get("peft_type") != "LORA"
                or not (folder / "adapter_model.safetensors").is_file()):
            return False
        self.loras[model] = str(folder)
        self.lora_calls.append(("resolved", {"lora_name": model, "lora_path": str(folder)}))
        return True

    async def _load(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        self.lora_calls.append(("load", body))
        if self.load_gate is not None:
            await self.load_gate.wait()
        name = body.get("lora_name")
        if name in self.loras:
            return _error(400, f"The lora adapter '{name}' has already been loaded.",
                          "InvalidUserInput", None)
        self.loras[name] = body.get("lora_path", "")
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    async def _unload(self, request: Request) -> Response:
        body = await request.json()
        self.lora_calls.append(("unload", body))
        name = body.get("lora_name")
        if self.loras.pop(name, None) is None:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError",
                          None)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")


def _choice(index: int, answer: FakeAnswer, chat: bool) -> dict[str, Any]:
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": answer.content or None}
        if answer.tool_calls is not None:
            message["tool_calls"] = [
                {"id": f"chatcmpl-tool-{i}", "type": "function",
                 "function": {"name": name, "arguments": arguments}}
                for i, (name, arguments) in enumerate(answer.tool_calls)]
        return {"index": index, "message": message, "finish_reason": answer.finish_reason}
    return {"index": index, "text": answer.content, "finish_reason": answer.finish_reason}


def _call_deltas(index: int, call: tuple[str, str]) -> list[dict[str, Any]]:
    """One call as vLLM streams it: the name first, then the arguments in two pieces."""
    name, arguments = call
    half = len(arguments) // 2
    return [{"tool_calls": [{"index": index, "id": f"chatcmpl-tool-{index}", "type": "function",
                             "function": {"name": name, "arguments": ""}}]},
            *({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
              for piece in (arguments[:half], arguments[half:]) if piece)]


def _usage(answer: FakeAnswer, n: int) -> dict[str, int]:
    completion = answer.completion_tokens
    if completion is None:
        completion = max(1, len(answer.content.split()))
    completion *= n
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
    }


def _pieces(content: str) -> list[str]:
    words = content.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] or [""]


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _error(status: int, message: str, kind: str, param: str | None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _left(request: Request, delay: float) -> bool:
    """Waits ``delay`` seconds, like a slow engine; True if the client disconnected first."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), delay)
    except TimeoutError:
        return False
    return True
