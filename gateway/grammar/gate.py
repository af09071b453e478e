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

    async def admit(self, path: str, body: dict[str, Any]) -> None:
        """Raises unless every grammar in ``body`` has a passing verdict."""
        if self.checker is None:
            return
        for spec in grammar_specs(body, chat=path == CHAT_PATH):
            await self._passes(self.checker, spec)

    async def _passes(self, checker: GrammarChecker, spec: GrammarSpec) -> None:
        verdict = await checker.wait(spec, checker.wait_limit())
        if verdict is None:
            raise GrammarCheckBusy(
                f"the grammar of {spec.param} is still being checked; try again shortly",
                param=spec.param, headers={"retry-after": "2"})
        if not verdict.compilable:
            raise GrammarUnavailable(
                f"{spec.param} cannot be used for constrained decoding: {verdict.reason}. "
                "Send the schema as response_format json_schema without it: the gateway "
                "validates every answer and retries without a grammar.", param=spec.param)

    async def post(self, path: str, body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
        await self.admit(path, body)
        return await self.engine.post(path, body, request_id)

    @asynccontextmanager
    async def stream(
        self, path: str, body: dict[str, Any], request_id: str = ""
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        await self.admit(path, body)
        async with self.engine.stream(path, body, request_id) as lines:
            yield lines
