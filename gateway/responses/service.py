"""Creates, keeps and returns responses: each one answered by the chat core (the same
validation, retries, adapters, rollouts, metrics and capture), then stored for its key."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from typing import Any

from gateway.inference.call import RESPONSES, Reply
from gateway.inference.service import InferenceService
from gateway.observation import Observation
from gateway.privacy.redaction import Redactor
from gateway.responses.events import ResponseEvents, chat_chunks, sse_event
from gateway.responses.items import as_items, messages_of, new_id, output_items, with_ids
from gateway.responses.store import ResponseStore, Stored
from gateway.responses.translate import chat_request, response_object
from gateway.responses.wire import ResponsesRequest
from gateway.structured.outcome import EXTENSION

_PAGE_MAX = 100


class ResponsesService:
    def __init__(self, inference: InferenceService, store: ResponseStore,
                 redactor: Redactor | None = None) -> None:
        self.inference = inference
        self.store = store
        # The capture's setting (structured.capture.redact): what is kept is redacted; the
        # answer the client gets is not.
        self.redactor = redactor or Redactor(())

    async def create(
        self, request: ResponsesRequest, observation: Observation, request_id: str,
        caller: str | None = None, sticky: str | None = None,
    ) -> Reply:
        """Answers one request; keeps it (``store``, the default) for the caller's key."""
        owner = caller or ""
        items = with_ids(as_items(request.input))
        history = (await asyncio.to_thread(self.store.conversation, owner,
                                           request.previous_response_id)
                   if request.previous_response_id else [])
        messages = [*_messages(history), *messages_of(items)]
        chat = chat_request(request, messages)
        if request.store and not history:
            await asyncio.to_thread(self.store.check)  # before the engine spends anything
        answer = await self.inference.complete(RESPONSES, chat, observation, request_id,
                                               caller, sticky)
        build = functools.partial(response_object, new_id("resp"), request, request.model)
        if isinstance(answer.body, dict):
            response = _whole(answer.body, build)
            await self._keep(request, owner, response, items)
            return Reply(response, answer.headers)
        return Reply(self._events(answer.body, ResponseEvents(build), request, owner, items),
                     answer.headers)

    async def _events(
        self, chat: AsyncIterator[bytes], events: ResponseEvents, request: ResponsesRequest,
        owner: str, items: list[dict[str, Any]],
    ) -> AsyncIterator[bytes]:
        for event in events.start():
            yield sse_event(event)
        try:
            async with aclosing(chat_chunks(chat)) as chunks:
                async for chunk in chunks:
                    if isinstance(chunk.get("error"), dict):
                        for event in events.fail(chunk["error"]):
                            yield sse_event(event)
                        return
                    for event in events.feed(chunk):
                        yield sse_event(event)
        finally:
            # The chat stream holds the lease and the engine's connection: let go now, not
            # when the garbage collector finds it (a client that left, an error).
            closing = getattr(chat, "aclose", None)
            if closing is not None:
                await closing()
        closing = list(events.finish())
        if events.response is not None:
            await self._keep(request, owner, events.response, items)
        for event in closing:
            yield sse_event(event)

    async def _keep(self, request: ResponsesRequest, owner: str, response: dict[str, Any],
                    items: list[dict[str, Any]]) -> None:
        if request.store:
            await asyncio.to_thread(self.store.put, owner, self.redactor.message(response),
                                    [self.redactor.message(item) for item in items])

    async def get(self, caller: str | None, response_id: str) -> dict[str, Any]:
        return (await asyncio.to_thread(self.store.get, caller or "", response_id)).response

    async def delete(self, caller: str | None, response_id: str) -> dict[str, Any]:
        await asyncio.to_thread(self.store.delete, caller or "", response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    async def input_items(self, caller: str | None, response_id: str, *, limit: int = 20,
                          order: str = "desc", after: str | None = None) -> dict[str, Any]:
        """One page of the input items of ``response_id`` (OpenAI's list object)."""
        stored = await asyncio.to_thread(self.store.get, caller or "", response_id)
        items = stored.input if order == "asc" else stored.input[::-1]
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page = items[:max(1, min(limit, _PAGE_MAX))]
        return {"object": "list", "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > len(page)}


def _messages(history: Iterable[Stored]) -> list[dict[str, Any]]:
    """The earlier turns of a conversation: each one's input, then its output."""
    messages: list[dict[str, Any]] = []
    for turn in history:
        messages += messages_of(turn.input) + messages_of(turn.response["output"], "output")
    return messages


def _whole(completion: dict[str, Any], build: Any) -> dict[str, Any]:
    choice = (completion.get("choices") or [{}])[0]
    response: dict[str, Any] = build(output_items(choice.get("message") or {}),
                                     usage=completion.get("usage"),
                                     finish_reason=choice.get("finish_reason"))
    if EXTENSION in completion:
        response[EXTENSION] = completion[EXTENSION]
    return response
