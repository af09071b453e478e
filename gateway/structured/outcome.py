"""What a structured request went through, and how the client is told.

The response carries the verdict three ways: the ``structured`` extension field
in the body (the ``openai`` SDK keeps unknown fields), ``x-structured-*`` headers,
and, when every attempt failed, a 422 error that holds the last answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import UnprocessableAnswer
from gateway.structured.attempts import Answer
from gateway.structured.deviations import Verdict
from gateway.structured.retry import Strategy
from gateway.structured.tool_calls import ToolCall

EXTENSION = "structured"
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass
class Deviation:
    attempt: int
    kind: str
    keyword: str | None
    messages: tuple[str, ...]
    # The gateway stopped the answer as soon as it could no longer be valid.
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        report = {"attempt": self.attempt, "kind": self.kind, "keyword": self.keyword,
                  "messages": list(self.messages)}
        if self.stopped_early:
            report["stopped_early"] = True
        return report


@dataclass
class Outcome:
    """The attempts of one structured request."""

    schema: str
    attempts: int = 0
    strategies: list[Strategy] = field(default_factory=list)
    deviations: list[Deviation] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_USAGE_KEYS, 0))
    valid: bool = False
    content: str | None = None
    # The valid answer's tool calls (a request that offered tools, answered with calls).
    calls: tuple[ToolCall, ...] | None = None
    last: Answer | None = None
    budget_exhausted: bool = False
    # Why the constrained strategy was skipped ("unavailable: ..."), when it was.
    constrained: str | None = None

    def add_answer(self, answer: Answer) -> None:
        self.attempts += 1
        self.last = answer
        usage = answer.response.get("usage") or {}
        for key in _USAGE_KEYS:
            self.usage[key] += int(usage.get(key) or 0)

    def add_verdict(
        self, verdict: Verdict, content: str | None, *, stopped_early: bool = False
    ) -> None:
        if verdict.valid:
            self.valid, self.content, self.calls = True, content, verdict.calls
            return
        kind = verdict.kind.value if verdict.kind else "unknown"
        self.deviations.append(Deviation(self.attempts, kind, verdict.keyword, verdict.messages,
                                         stopped_early))

    def report(self) -> dict[str, Any]:
        report = {
            "schema": self.schema,
            "valid": self.valid,
            "attempts": self.attempts,
            "strategies": [s.value for s in self.strategies],
            "deviations": [d.as_dict() for d in self.deviations],
            "retry_budget_exhausted": self.budget_exhausted,
        }
        if self.constrained is not None:
            report["constrained"] = self.constrained
        return report

    def headers(self) -> dict[str, str]:
        return {
            "x-structured-valid": str(self.valid).lower(),
            "x-structured-attempts": str(self.attempts),
            "x-structured-deviations": ",".join(d.kind for d in self.deviations) or "none",
        }

    def response(self, public_model: str, chat: bool) -> dict[str, Any]:
        """The final JSON response: the last engine answer carrying the valid content."""
        assert self.last is not None
        response = dict(self.last.response)
        response["model"] = public_model
        response["usage"] = dict(self.usage)
        response[EXTENSION] = self.report()
        if self.valid:
            choice = dict(response["choices"][0])
            if chat:
                choice["message"] = {**(choice.get("message") or {}), **(self.message() or {})}
                if self.calls:
                    choice["finish_reason"] = "tool_calls"
            else:
                choice["text"] = self.content
            response["choices"] = [choice]
        return response

    def message(self) -> dict[str, Any] | None:
        """The valid chat answer as an assistant message, or None before one is valid."""
        if not self.valid:
            return None
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.calls:
            prefix = self.last.response.get("id", "call") if self.last else "call"
            message["tool_calls"] = [call.as_openai(i, f"call_{prefix}_{i}")
                                     for i, call in enumerate(self.calls)]
        elif self.last is not None and self.last.tool_calls is not None:
            message["tool_calls"] = []
        return message

    def _advice(self) -> str:
        if self.budget_exhausted:
            return "The retry budget is spent: too many answers deviate; retry later."
        if self.deviations and all(d.kind == "truncated" for d in self.deviations):
            return "Every answer was cut off: raise max_tokens."
        if self.constrained is not None:
            return ("Constrained decoding is not available for this schema "
                    f"({self.constrained}): raise retry.max_attempts, simplify the schema, "
                    "or fine-tune an adapter for this format.")
        if Strategy.CONSTRAINED not in self.strategies:
            return "Add the 'constrained' retry strategy, or raise retry.max_attempts."
        return "Raise retry.max_attempts, or fine-tune an adapter for this format."

    def _about_tools(self) -> bool:
        return any(d.kind.startswith("tool_") for d in self.deviations)

    def exhausted_error(self) -> UnprocessableAnswer:
        last = self.last.content if self.last else None
        kinds = ", ".join(d.kind for d in self.deviations) or "none"
        tried = ", ".join(s.value for s in self.strategies) or "none"
        return UnprocessableAnswer(
            f"No answer matched the schema {self.schema!r} after {self.attempts} attempts "
            f"(deviations: {kinds}; retries: {tried}). {self._advice()}",
            param="tools" if self.calls is not None or self._about_tools() else "response_format",
            extra={"last_answer": (last or "")[:4000], EXTENSION: self.report(),
                   "usage": dict(self.usage)},
            headers=self.headers(),
        )

