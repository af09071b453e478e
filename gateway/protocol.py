"""OpenAI wire models shared by the routes.

Requests keep OpenAI's permissiveness: fields the gateway does not know are
kept (``extra="allow"``) and passed on to the engine unchanged. The gateway's
own extension fields (``retry``) are taken out before forwarding.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Wire):
    role: Role
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Wire):
    include_usage: bool = False


class _SamplingRequest(_Wire):
    model: str = Field(min_length=1, max_length=256)
    n: int = Field(1, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    retry: dict[str, Any] | None = None

    def upstream_body(self) -> dict[str, Any]:
        """The body sent to the engine: everything but the gateway's own extensions."""
        return self.model_dump(exclude={"retry"}, exclude_unset=True)


class ChatCompletionRequest(_SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @field_validator("messages")
    @classmethod
    def _has_content(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if all(not m.content for m in messages):
            raise ValueError("every message is empty; send at least one message with content")
        return messages

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_SamplingRequest):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool | None = None

    @field_validator("prompt")
    @classmethod
    def _not_empty(
        cls, prompt: str | list[str] | list[int] | list[list[int]]
    ) -> str | list[str] | list[int] | list[list[int]]:
        if not prompt:
            raise ValueError("prompt is empty; send the text to complete")
        return prompt

    def token_limit(self) -> int | None:
        return self.max_tokens


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "adapter-gateway"
    root: str | None = None
    parent: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
