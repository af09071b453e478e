"""Fail fast for tool calls: telling, while a call streams in, that it can no longer be valid.

The engine's parser streams a call as its function name, then its arguments in pieces.
``ToolCallCheck`` stops the attempt once a call names a function it may not call, or once
its arguments can no longer be valid: each call's arguments are read by a ``PrefixCheck``
on that function's ``parameters``, and its verdict becomes the matching tool kind. Text
before a call is not judged: prose may precede a call, and under ``auto`` may be the answer.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.structured.deviations import DeviationKind, Verdict
from gateway.structured.early import PrefixCheck
from gateway.structured.tools import ToolSet

# What a stopped argument stream's verdict means for the call.
_ARGUMENT_KINDS = {
    DeviationKind.SCHEMA_VIOLATION: DeviationKind.TOOL_ARGUMENTS_SCHEMA_VIOLATION,
    DeviationKind.TRUNCATED: DeviationKind.TOOL_ARGUMENTS_TRUNCATED,
}


class ToolCallCheck:
    """Reads the calls of a streamed attempt; ``feed_call`` returns the verdict to record
    once a call is doomed, else None."""

    def __init__(self, tools: ToolSet) -> None:
        self.tools = tools
        # Per call index: the function it names and the check of its arguments.
        self._calls: dict[int, tuple[str, PrefixCheck]] = {}

    def feed(self, piece: str) -> Verdict | None:
        """Text is never stopped: it may precede a call, or be the answer under ``auto``."""
        return None

    def feed_call(self, index: int, name: str | None, arguments: str) -> Verdict | None:
        """A call's new piece: its function's name (once, first) and more of its arguments."""
        if name is not None and index not in self._calls:
            doomed = self._named(index, name)
            if doomed is not None:
                return doomed
        if index not in self._calls or not arguments:
            return None
        function, check = self._calls[index]
        verdict = check.feed(arguments)
        if verdict is None:
            return None
        kind = _ARGUMENT_KINDS.get(verdict.kind or DeviationKind.INVALID_JSON,
                                   DeviationKind.TOOL_ARGUMENTS_INVALID_JSON)
        where = f"tool_calls[{index}] ({function})"
        return replace(verdict, kind=kind, messages=tuple(f"{where}: {m}"
                                                         for m in verdict.messages))

    def _named(self, index: int, name: str) -> Verdict | None:
        where = f"tool_calls[{index}] ({name[:64]})"
        if self.tools.mode == "none":
            return _stop(DeviationKind.TOOL_CALL_UNEXPECTED,
                         f'{where}: tool_choice is "none" but the answer calls a function')
        if index > 0 and not self.tools.parallel:
            return _stop(DeviationKind.TOOL_CALL_UNEXPECTED,
                         f"{where}: parallel_tool_calls is false but the answer makes a second "
                         "call")
        allowed = {tool.name: tool for tool in self.tools.allowed}
        if name not in allowed:
            return _stop(DeviationKind.TOOL_UNKNOWN,
                         f"{where}: the function may not be called here; call one of: "
                         + ", ".join(list(allowed)[:10]))
        self._calls[index] = (name, PrefixCheck(allowed[name].parameters))
        return None


def _stop(kind: DeviationKind, message: str) -> Verdict:
    return Verdict(valid=False, kind=kind,
                   messages=(message + " (seen before the answer was complete)",))
