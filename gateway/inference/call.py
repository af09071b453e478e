"""One request on its way through the gateway, and the answer it gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.adapters.serving.target import ModelTarget
from gateway.observation import Observation
from gateway.protocol import ChatCompletionRequest, CompletionRequest

AnyRequest = ChatCompletionRequest | CompletionRequest

CHAT = "chat"
COMPLETIONS = "completions"
# The Responses API is answered as chat completions: one engine path, one validation core.
RESPONSES = "responses"
PATHS = {CHAT: "/v1/chat/completions", COMPLETIONS: "/v1/completions",
         RESPONSES: "/v1/chat/completions"}


@dataclass
class Call:
    """One request on its way through the gateway."""

    endpoint: str
    request: AnyRequest
    target: ModelTarget
    body: dict[str, Any]
    observation: Observation
    request_id: str

    @property
    def path(self) -> str:
        return PATHS[self.endpoint]

    @property
    def chat(self) -> bool:
        """Whether the engine sees it as a chat completion (messages, tools)."""
        return self.path == PATHS[CHAT]


@dataclass
class Reply:
    """What the client gets: a JSON body or SSE bytes, and the headers that go with it."""

    body: dict[str, Any] | AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


class Forwarder(Protocol):
    async def __call__(self, call: Call, body: dict[str, Any]) -> dict[str, Any]: ...


class Upstream(Protocol):
    """The engine as the structured runner sees it: whole answers, or a stream of events."""

    async def forward(self, call: Call, body: dict[str, Any]) -> dict[str, Any]: ...

    def events(
        self, call: Call, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]: ...
