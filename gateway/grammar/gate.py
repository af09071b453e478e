"""The one door to the engine for inference requests: no grammar passes without a verdict.

Every chat and text completion the gateway sends (first attempts, retries, passed-through
requests with side-door fields or ``tool_choice`` grammars, shadow copies) goes through
:class:`GrammarGate`. It lists the grammars the body would make the engine compile and lets
the body through only when the compile check has a passing verdict for each, waiting for
one up to the compile limit. Anything else is refused here, before the engine sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gateway.engine.client import EngineClient
from gateway.errors import GatewayError, InvalidRequest
from gateway.grammar.checker import GrammarChecker
from gateway.structured.grammars import GrammarSpec, grammar_specs

CHAT_PATH = "/v1/chat/completions"


class GrammarUnavailable(InvalidRequest):
    """The engine's compiler does not take this grammar within the limits."""

    default_code = "grammar_unavailable"


class GrammarCheckBusy(GatewayError):
    """No verdict within the wait: the compile check is busy with other grammars."""

    status_code = 503
    default_code = "grammar_check_busy"


class GrammarGate:
    """The engine's ``post`` and ``stream``, behind the compile check."""

    def __init__(self, engine: EngineClient, checker: GrammarChecker | None) -> None:
        self.engine = engine
        # None: the check is off, and grammars reach the engine unchecked.
        self.checker = checker

    async def admit(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as the engine gets it, once every grammar in it has a passing verdict;
        raises otherwise."""
        body = without_strict_tools(body)
        if self.checker is None:
            return body
        for spec in grammar_specs(body, chat=path == CHAT_PATH):
            await self._passes(self.checker, spec)
        return body

    async def _passes(self, checker: GrammarChecker, spec: GrammarSpec) -> None:
        verdict = await checker.wait(spec, checker.wait_limit())
        if verdict is None or verdict.transient:
            why = "is still being checked" if verdict is None else f"cannot be checked now " \
                f"({verdict.reason})"
            raise GrammarCheckBusy(f"the grammar of {spec.param} {why}; try again shortly",
                                   param=spec.param, headers={"retry-after": "2"})
        if not verdict.compilable:
            raise GrammarUnavailable(
                f"{spec.param} cannot be used for constrained decoding: {verdict.reason}. "
                "Send the schema as response_format json_schema without it: the gateway "
                "validates every answer and retries without a grammar.", param=spec.param)

    async def post(self, path: str, body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
        return await self.engine.post(path, await self.admit(path, body), request_id)

    @asynccontextmanager
    async def stream(
        self, path: str, body: dict[str, Any], request_id: str = ""
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self.engine.stream(path, await self.admit(path, body), request_id) as lines:
            yield lines


def without_strict_tools(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with no tool marked ``strict``.

    vLLM 0.32 with a tool parser compiles the parameters of every ``strict`` tool into a
    structural tag of its own making, for ``tool_choice`` ``auto`` too, from a recipe per
    model that the compile check cannot reproduce byte for byte. Without ``strict`` it
    constrains only the call's envelope (the function names), so no client schema reaches
    its compiler this way. The gateway checks every call against its function's
    ``parameters`` itself, and repairs one with its own grammar, which the check judges.
    """
    tools = body.get("tools")
    if not isinstance(tools, list) or not any(_strict(tool) for tool in tools):
        return body
    return {**body, "tools": [_loose(tool) for tool in tools]}


def _strict(tool: Any) -> bool:
    return isinstance(tool, dict) and (
        "strict" in tool or isinstance(tool.get("function"), dict) and "strict" in tool["function"])


def _loose(tool: Any) -> Any:
    if not _strict(tool):
        return tool
    loose = {k: v for k, v in tool.items() if k != "strict"}
    if isinstance(loose.get("function"), dict):
        loose["function"] = {k: v for k, v in loose["function"].items() if k != "strict"}
    return loose
