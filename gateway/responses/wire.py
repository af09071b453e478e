"""The Responses API's request, and the fields the gateway honours, ignores or refuses.

Unknown fields pass on to the engine, as on chat completions. A Responses field whose
meaning the gateway cannot honour is refused by name when it carries a value; see
docs/responses.md for the table.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.errors import InvalidRequest

# Accepted, with no effect on the served models, and said so in docs/responses.md: hints
# about caching, routing and abuse tracking, and reasoning (the served models produce no
# reasoning items, so there is nothing for an effort, a summary or an include to act on).
HINTS = frozenset({"service_tier", "prompt_cache_key", "prompt_cache_retention",
                   "prompt_cache_options", "safety_identifier", "reasoning", "stream_options"})
# The include values that ask for nothing the gateway would produce.
INCLUDABLE = frozenset({"reasoning.encrypted_content"})
# Fields refused whenever they carry a value, with the reason.
REFUSED = {
    "background": "background responses are not served: send the request and wait, or stream",
    "conversation": "the Conversations API is not served: chain turns with previous_response_id",
    "prompt": "stored prompt templates are not served: send the instructions and input",
    "max_tool_calls": "max_tool_calls is not enforced: bound calls with tool_choice",
    "top_logprobs": "log probabilities are not returned on /v1/responses: use /v1/chat/completions",
    "context_management": "server-side context management is not served",
    "moderation": "moderation is not served",
}


class ResponsesRequest(BaseModel):
    """``POST /v1/responses``: OpenAI's fields, plus the gateway's own ``retry``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    metadata: dict[str, str] | None = None
    stream: bool = False
    text: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    store: bool = True
    previous_response_id: str | None = Field(None, min_length=1, max_length=128)
    user: str | None = None
    include: list[str] | None = None
    truncation: str | None = None
    retry: dict[str, Any] | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if not value:
            raise ValueError("input is empty; send the text or the items of this turn")
        return value

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512.
        if value is not None and (len(value) > 16 or any(
                len(k) > 64 or len(v) > 512 for k, v in value.items())):
            raise ValueError("metadata takes at most 16 pairs, keys of up to 64 characters "
                             "and values of up to 512")
        return value

    def refuse_what_cannot_be_honoured(self) -> None:
        """A clear 400 naming the first field the gateway would otherwise drop silently."""
        extra = self.model_extra or {}
        for name, reason in REFUSED.items():
            if extra.get(name) not in (None, False):
                raise InvalidRequest(f"{name} is not supported by this gateway: {reason}",
                                     param=name, code="unsupported_parameter")
        if self.truncation not in (None, "disabled"):
            raise InvalidRequest(
                "truncation 'auto' is not supported: the gateway does not drop input items; "
                "send a shorter conversation or set truncation to 'disabled'",
                param="truncation", code="unsupported_parameter")
        for value in self.include or ():
            if value not in INCLUDABLE:
                raise InvalidRequest(f"include {value!r} is not supported by this gateway",
                                     param="include", code="unsupported_parameter")

    def passed_on(self) -> dict[str, Any]:
        """Fields the gateway does not know: they go to the engine as they came."""
        extra = self.model_extra or {}
        return {k: v for k, v in extra.items() if k not in HINTS and k not in REFUSED}
