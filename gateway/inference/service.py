"""The inference service: resolves the target, forwards to the engine, records what it saw."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config import LimitSettings
from gateway.engine.client import EngineClient
from gateway.errors import GatewayError, InvalidRequest, UpstreamError
from gateway.inference.relay import StreamStats, error_event, relay
from gateway.inference.targets import ModelTarget, TargetResolver
from gateway.metrics import GatewayMetrics
from gateway.observation import Observation
from gateway.protocol import ChatCompletionRequest, CompletionRequest

log = logging.getLogger(__name__)

AnyRequest = ChatCompletionRequest | CompletionRequest
Answer = dict[str, Any] | AsyncIterator[bytes]

CHAT = "chat"
COMPLETIONS = "completions"
PATHS = {CHAT: "/v1/chat/completions", COMPLETIONS: "/v1/completions"}
ADAPTER_VERSION_HEADER = "x-adapter-version"


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


class StructuredRunner(Protocol):
    """Answers calls that must come back as schema-valid JSON; None for free-text calls."""

    async def answer(self, call: Call, forward: Forwarder) -> Answer | None: ...


class Forwarder(Protocol):
    async def __call__(self, call: Call, body: dict[str, Any]) -> dict[str, Any]: ...


class InferenceService:
    def __init__(
        self,
        engine: EngineClient,
        targets: TargetResolver,
        limits: LimitSettings,
        metrics: GatewayMetrics,
        structured: StructuredRunner | None = None,
    ) -> None:
        self.engine = engine
        self.targets = targets
        self.limits = limits
        self.metrics = metrics
        self.structured = structured

    async def complete(
        self, endpoint: str, request: AnyRequest, observation: Observation, request_id: str
    ) -> Answer:
        """Answers one chat or text completion request (a dict, or SSE bytes when streaming)."""
        observation.endpoint = endpoint
        self._check_limits(request)
        target = self.targets.acquire(request.model)
        observation.adapter = self.metrics.adapter_label(target.adapter)
        self._count_in_flight(target, observation.adapter)
        if target.version:
            # Tells clients which weights answered, across hot swaps (e.g. for a canary).
            observation.extra_headers[ADAPTER_VERSION_HEADER] = target.version
        call = Call(endpoint, request, target, _engine_body(request, target), observation,
                    request_id)
        try:
            structured = await self._structured(call)
        except BaseException:
            target.release()
            raise
        if structured is not None:
            target.release()
            return structured
        if request.stream:
            return await _primed(self._stream(call))  # the stream releases the target
        try:
            answer = await self.forward(call, call.body)
        finally:
            target.release()
        answer["model"] = target.public_name
        return answer

    async def _structured(self, call: Call) -> Answer | None:
        """A structured answer (every engine call done), or None for a free-text call."""
        if self.structured is None:
            return None
        return await self.structured.answer(call, self.forward)

    async def forward(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """Sends one non-streaming request to the engine and counts its tokens."""
        started = time.perf_counter()
        try:
            answer = await self.engine.post(call.path, body, call.request_id)
        finally:
            self._upstream_time(call, time.perf_counter() - started)
        self._count_tokens(call, answer.get("usage"))
        return answer

    async def _stream(self, call: Call) -> AsyncIterator[bytes]:
        body = dict(call.body)
        client_wants_usage = bool(call.request.stream_options
                                  and call.request.stream_options.include_usage)
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        stats = StreamStats()
        try:
            async with self.engine.stream(call.path, body, call.request_id) as lines:
                async for event in relay(lines, call.target.public_name, stats,
                                         keep_usage=client_wants_usage):
                    yield event
        except GatewayError as exc:
            if stats.events == 0:
                raise
            log.warning("stream %s broke: %s", call.request_id, exc.message)
            yield error_event(exc)
        finally:
            call.target.release()
            self._upstream_time(call, time.perf_counter() - stats.started)
            self._record_stream(call, stats)

    def _count_in_flight(self, target: ModelTarget, adapter: str) -> None:
        """Counts the request in flight until its target is released (streams: at the end)."""
        if not self.metrics.enabled:
            return
        gauge = self.metrics.child(self.metrics.in_flight, adapter)
        gauge.inc()
        release = target.on_release

        def released() -> None:
            gauge.dec()
            if release is not None:
                release()

        target.on_release = released

    def _check_limits(self, request: AnyRequest) -> None:
        if request.n > self.limits.max_n:
            raise InvalidRequest(
                f"n={request.n} is above this gateway's limit of {self.limits.max_n}; "
                "ask for fewer choices per request", param="n")
        prompts = _prompt_count(request)
        if prompts * request.n > self.limits.max_n:
            raise InvalidRequest(
                f"{prompts} prompts x n={request.n} make {prompts * request.n} completions, "
                f"above this gateway's limit of {self.limits.max_n} per request; "
                "send fewer prompts per request", param="prompt")
        limit = request.token_limit()
        if limit is not None and limit > self.limits.max_tokens:
            raise InvalidRequest(
                f"max_tokens={limit} is above this gateway's limit of {self.limits.max_tokens}; "
                "lower it", param="max_tokens")
        if isinstance(request, ChatCompletionRequest) and (
            len(request.messages) > self.limits.max_messages
        ):
            raise InvalidRequest(
                f"{len(request.messages)} messages is above this gateway's limit of "
                f"{self.limits.max_messages}", param="messages")

    def _upstream_time(self, call: Call, seconds: float) -> None:
        call.observation.add_upstream(seconds)
        if self.metrics.enabled:
            m = self.metrics
            m.child(m.upstream_duration, call.observation.adapter, call.endpoint).observe(seconds)

    def _count_tokens(self, call: Call, usage: Any) -> None:
        if not self.metrics.enabled or not isinstance(usage, dict):
            return
        adapter = call.observation.adapter
        m = self.metrics
        m.child(m.prompt_tokens, adapter).inc(int(usage.get("prompt_tokens") or 0))
        m.child(m.completion_tokens, adapter).inc(int(usage.get("completion_tokens") or 0))

    def _record_stream(self, call: Call, stats: StreamStats) -> None:
        self._count_tokens(call, stats.usage)
        if not self.metrics.enabled:
            return
        adapter = call.observation.adapter
        if stats.time_to_first_token is not None:
            self.metrics.time_to_first_token.labels(adapter).observe(stats.time_to_first_token)
        histogram = self.metrics.inter_token_latency.labels(adapter)
        for gap in stats.gaps:
            histogram.observe(gap)


def _prompt_count(request: AnyRequest) -> int:
    """How many prompts a text completion carries (a list of token ids is one prompt)."""
    if isinstance(request, ChatCompletionRequest) or isinstance(request.prompt, str):
        return 1
    return 1 if isinstance(request.prompt[0], int) else len(request.prompt)


def _engine_body(request: AnyRequest, target: ModelTarget) -> dict[str, Any]:
    body = request.upstream_body()
    body["model"] = target.engine_model
    defaults = target.defaults
    for key, value in defaults.sampling.model_dump(exclude_none=True).items():
        body.setdefault(key, value)
    if defaults.system_prompt and isinstance(request, ChatCompletionRequest) and not any(
        m.role in ("system", "developer") for m in request.messages
    ):
        body["messages"] = [{"role": "system", "content": defaults.system_prompt},
                            *body["messages"]]
    return body


async def _primed(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Runs a stream up to its first event, so errors before it become HTTP errors."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        raise UpstreamError("the engine closed the stream without sending anything") from None
    return _prepend(first, stream)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for item in rest:
        yield item
