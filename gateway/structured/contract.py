"""What a structured request asks of its answer, behind one interface for the retry loop.

Two ways in, one loop (``gateway.inference.structured``): a ``response_format`` schema
(:class:`SchemaContract`) and offered tools (:class:`ToolContract`, with the
``response_format`` schema for a prose answer when the request has both). Each says how
its first attempt is made, how an answer is checked, what lenient extraction recovers and
how each retry strategy builds the next engine request. Validation, classification,
retries, the budget, metrics and capture are the loop's, once for both.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.structured import attempts
from gateway.structured.attempts import Answer
from gateway.structured.constrained import constrained_fields, constrained_max_tokens
from gateway.structured.deviations import Verdict, check_document, classify
from gateway.structured.early import PrefixCheck
from gateway.structured.early_tools import ToolCallCheck
from gateway.structured.response_format import RequestedSchema
from gateway.structured.retry import Strategy
from gateway.structured.tool_calls import (
    ToolCall,
    calls_in_content,
    check_calls,
    check_tool_answer,
)
from gateway.structured.tool_repair import call_schema, reask_messages
from gateway.structured.tools import ToolSet

_SEED_RANGE = 2**31 - 1


class StreamCheck(Protocol):
    """Reads a first attempt as it streams and says when it can no longer be valid."""

    def feed(self, piece: str) -> Verdict | None:
        """More text of the answer."""
        ...

    def feed_call(self, index: int, name: str | None, arguments: str) -> Verdict | None:
        """More of tool call ``index``: its function's name (once, first), its arguments."""
        ...


class Contract(Protocol):
    """What the retry loop needs to know about what a request asks for."""

    @property
    def name(self) -> str:
        """How the verdict names what was checked (the schema's or the function's name)."""
        ...

    @property
    def label(self) -> str:
        """A bounded metric label."""
        ...

    def stream_check(self, read_prose: bool) -> StreamCheck:
        """The check that stops a first attempt early (fail fast); ``read_prose`` keeps
        reading prose until an object inside it is complete (for ``extract``)."""
        ...

    def first_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The first attempt: the request without format constraint or streaming."""
        ...

    def check(self, answer: Answer, strategy: Strategy | None) -> Verdict:
        """The verdict on one answer, made with ``strategy`` (None: the first attempt)."""
        ...

    def extract(self, verdict: Verdict) -> tuple[Verdict, str | None] | None:
        """A valid verdict (and its content) recovered from ``verdict`` without the engine."""
        ...

    def kept_content(self, answer: Answer, verdict: Verdict) -> str | None:
        """The content the client gets with a valid ``verdict``."""
        ...

    def retry_body(self, strategy: Strategy, first: Mapping[str, Any], last: Answer,
                   verdict: Verdict, chat: bool) -> dict[str, Any]:
        """The engine request of a retry made with ``strategy``."""
        ...

    def grammars(self) -> list[dict[str, Any]]:
        """The format fields of every constrained retry this contract may make (for the
        compile check to judge before one is needed)."""
        ...


@dataclass(frozen=True)
class SchemaContract:
    """A ``response_format`` schema (or an adapter's default schema)."""

    requested: RequestedSchema

    @property
    def name(self) -> str:
        return self.requested.name

    @property
    def label(self) -> str:
        return self.requested.label

    def stream_check(self, read_prose: bool) -> StreamCheck:
        return _AnswerCheck(self.requested.schema, read_prose=read_prose)

    def first_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return attempts.first_body(body)

    def check(self, answer: Answer, strategy: Strategy | None) -> Verdict:
        return classify(answer.content, answer.finish_reason, self.requested.schema,
                        answer.refusal)

    def extract(self, verdict: Verdict) -> tuple[Verdict, str | None] | None:
        recovered = check_document(verdict.extracted, self.requested.schema)
        return (recovered, attempts.extracted_content(verdict)) if recovered.valid else None

    def kept_content(self, answer: Answer, verdict: Verdict) -> str | None:
        return answer.content

    def retry_body(self, strategy: Strategy, first: Mapping[str, Any], last: Answer,
                   verdict: Verdict, chat: bool) -> dict[str, Any]:
        return attempts.retry_body(strategy, first, last, verdict,
                                   self.requested.schema.schema, chat)

    def grammars(self) -> list[dict[str, Any]]:
        return [constrained_fields(self.requested.schema.schema)]


@dataclass(frozen=True)
class ToolContract:
    """Offered tools: every call checked; a prose answer checked against ``content``."""

    tools: ToolSet
    content: RequestedSchema | None = None

    @property
    def name(self) -> str:
        return self.tools.name

    @property
    def label(self) -> str:
        return self.tools.label

    def stream_check(self, read_prose: bool) -> StreamCheck:
        return ToolCallCheck(self.tools)

    def first_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Under ``required`` or a named choice the first attempt goes with ``auto``: the
        engine then adds no grammar of its own, and the model's own calls are measured."""
        first = attempts.first_body(body)
        if self.tools.requires_call:
            first["tool_choice"] = "auto"
        return first

    def check(self, answer: Answer, strategy: Strategy | None) -> Verdict:
        if strategy is Strategy.CONSTRAINED:
            return self._constrained(answer)
        content_schema = None if self.content is None else self.content.schema
        return check_tool_answer(answer.tool_calls, answer.content, answer.finish_reason,
                                 self.tools, content_schema)

    def _constrained(self, answer: Answer) -> Verdict:
        """A constrained attempt answers one call as JSON in its content (or, constrained to
        the response_format schema, the prose answer)."""
        found = calls_in_content((answer.content or "").strip(), self.tools)
        if found:
            return check_calls(found[:1], self.tools)
        content_schema = None if self.content is None else self.content.schema
        return check_tool_answer(None, answer.content, answer.finish_reason, self.tools,
                                 content_schema)

    def extract(self, verdict: Verdict) -> tuple[Verdict, str | None] | None:
        calls = verdict.extracted
        if not isinstance(calls, tuple) or not all(isinstance(c, ToolCall) for c in calls):
            return None
        recovered = check_calls(calls, self.tools)
        return (recovered, None) if recovered.valid else None

    def kept_content(self, answer: Answer, verdict: Verdict) -> str | None:
        if verdict.calls and not answer.tool_calls:
            return None  # the content was the call itself
        return answer.content or None if verdict.calls else answer.content

    def retry_body(self, strategy: Strategy, first: Mapping[str, Any], last: Answer,
                   verdict: Verdict, chat: bool) -> dict[str, Any]:
        body = dict(first)
        if strategy is Strategy.RESAMPLE:
            body["seed"] = random.randrange(_SEED_RANGE)
        elif strategy is Strategy.REASK:
            body["messages"] = reask_messages(first["messages"], last.content, last.tool_calls,
                                              verdict, self.tools)
        elif strategy is Strategy.CONSTRAINED:
            # The tools stay in the prompt; "none" keeps the engine's parser out of the way.
            # A prose answer that failed the response_format schema is constrained to it.
            schema = (self.content.schema.schema
                      if self.content is not None and not _is_tool_kind(verdict)
                      else call_schema(self.tools))
            body["tool_choice"] = "none"
            body.update(constrained_fields(schema))
            limit = constrained_max_tokens(schema, attempts.token_limit(first))
            if limit is not None:
                body.pop("max_completion_tokens", None)
                body["max_tokens"] = limit
        return body

    def grammars(self) -> list[dict[str, Any]]:
        schemas: list[Mapping[str, Any]] = [call_schema(self.tools)]
        if self.content is not None:
            schemas.append(self.content.schema.schema)
        return [constrained_fields(schema) for schema in schemas]


class _AnswerCheck(PrefixCheck):
    """The answer's text checked as it streams; a request without tools makes no calls."""

    def feed_call(self, index: int, name: str | None, arguments: str) -> Verdict | None:
        return None


def _is_tool_kind(verdict: Verdict) -> bool:
    return verdict.kind is not None and verdict.kind.value.startswith("tool_")
