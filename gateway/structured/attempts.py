"""The engine request for each attempt at a structured answer, by strategy."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.structured.constrained import constrained_fields, constrained_max_tokens
from gateway.structured.decoding_fields import DECODING_FIELDS
from gateway.structured.deviations import Verdict
from gateway.structured.reask import reask_messages, reask_prompt
from gateway.structured.retry import Strategy

# Fields that ask the engine for a format; the first attempt goes without them, so the
# model's own adherence to the format is what gets measured.
FORMAT_FIELDS = DECODING_FIELDS
# Attempts are made whole (a verdict needs the complete answer); a stream is replayed after.
STREAM_FIELDS = ("stream", "stream_options")
_SEED_RANGE = 2**31 - 1


@dataclass(frozen=True)
class Answer:
    """One engine answer: its text, finish reason and the whole response."""

    content: str | None
    finish_reason: str | None
    refusal: str | None
    response: dict[str, Any]
    # The engine's ``tool_calls`` (chat answers of requests that offered tools).
    tool_calls: Any = None

    @classmethod
    def of(cls, response: dict[str, Any], chat: bool) -> Answer:
        choices = response.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        if chat:
            message = choice.get("message") or {}
            return cls(message.get("content"), choice.get("finish_reason"),
                       message.get("refusal"), response, message.get("tool_calls"))
        return cls(choice.get("text"), choice.get("finish_reason"), None, response)


def first_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The first attempt: the request as sent, without format constraint or streaming."""
    return {k: v for k, v in body.items() if k not in FORMAT_FIELDS + STREAM_FIELDS}


def retry_body(
    strategy: Strategy,
    first: Mapping[str, Any],
    last: Answer,
    verdict: Verdict,
    schema: Mapping[str, Any],
    chat: bool,
) -> dict[str, Any]:
    """The body for a retry made with an engine-calling ``strategy``."""
    body = dict(first)
    if strategy is Strategy.RESAMPLE:
        body["seed"] = random.randrange(_SEED_RANGE)
    elif strategy is Strategy.REASK:
        if chat:
            body["messages"] = reask_messages(first["messages"], last.content, verdict, schema)
        else:
            body["prompt"] = reask_prompt(str(first["prompt"]), last.content, verdict, schema)
    elif strategy is Strategy.CONSTRAINED:
        body.update(constrained_fields(schema))
        limit = constrained_max_tokens(schema, token_limit(first))
        if limit is not None:
            body.pop("max_completion_tokens", None)
            body["max_tokens"] = limit
    return body


def extracted_content(verdict: Verdict) -> str:
    """The JSON found inside an ``extra_text`` answer, as the new content."""
    return json.dumps(verdict.extracted, ensure_ascii=False)


def token_limit(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if isinstance(value, int) else None
