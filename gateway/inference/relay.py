"""Relays an engine's SSE stream to the client, one event at a time."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from gateway.engine.client import error_from
from gateway.errors import GatewayError, UpstreamError

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


@dataclass
class StreamStats:
    """Timing and token counts seen while relaying one stream."""

    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    gaps: list[float] = field(default_factory=list)
    usage: dict[str, int] | None = None
    events: int = 0
    _last: float | None = None

    def saw_token(self) -> None:
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        elif self._last is not None:
            self.gaps.append(now - self._last)
        self._last = now

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def error_event(error: GatewayError, *, internals: bool = True, request_id: str = "") -> bytes:
    return sse(error.envelope_for(internals=internals, request_id=request_id))


async def events(lines: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The engine's stream events, parsed, up to ``[DONE]``.

    An error event from the engine, or a stream that ends without ``[DONE]``, raises the
    matching GatewayError.
    """
    async for line in lines:
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        event = _event(data)
        _raise_if_error(event)
        yield event
    raise UpstreamError("the engine's stream ended without [DONE]: the answer may be "
                        "incomplete", code="engine_cut_off")


async def relay(
    lines: AsyncIterator[bytes], public_model: str, stats: StreamStats, *, keep_usage: bool
) -> AsyncIterator[bytes]:
    """Yields the engine's events with ``model`` rewritten to the name the client used.

    The gateway always asks the engine for usage (to count tokens); the usage-only
    event is passed on only when the client asked for it too.
    """
    async for event in events(lines):
        observe(event, stats)
        if not keep_usage and "usage" in event:
            if not event.get("choices"):
                continue
            event.pop("usage")
        if "model" in event:
            event["model"] = public_model
        stats.events += 1
        yield sse(event)
    yield DONE


def _raise_if_error(event: dict[str, Any]) -> None:
    """vLLM reports a failure inside a stream as an event: ``{"error": {...}}`` (or, in
    older versions, ``{"object": "error", ...}``)."""
    error = event.get("error")
    if not isinstance(error, dict):
        if event.get("object") != "error":
            return
        error = event
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    raise error_from(status, json.dumps({"error": error}).encode())


def _event(data: bytes) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise UpstreamError("the engine sent a stream event that is not JSON") from exc
    if not isinstance(event, dict) or not all(
        isinstance(c, dict) for c in event.get("choices") or ()
    ):
        raise UpstreamError("the engine sent a stream event of an unknown shape")
    return event


def observe(event: dict[str, Any], stats: StreamStats) -> None:
    """Notes the usage and the token timing one event shows."""
    usage = event.get("usage")
    if isinstance(usage, dict):
        stats.usage = usage
    for choice in event.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or choice.get("text"):
            stats.saw_token()
            return
