"""The inference service: resolves the target, forwards to the engine, records what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from typing import Any

from gateway.adapters.errors import AdapterVersionCut
from gateway.adapters.serving.target import ModelTarget, Outcome, TargetLease
from gateway.errors import GatewayError, InvalidRequest, UpstreamError, http_status
from gateway.grammar.gate import GrammarGate
from gateway.inference.admission import Admission
from gateway.inference.call import AnyRequest, Call, Reply
from gateway.inference.relay import StreamStats, error_event, events, observe, relay
from gateway.inference.settings import LimitSettings
from gateway.inference.structured import StructuredRunner
from gateway.inference.targets import TargetResolver
from gateway.metrics import Recorder
from gateway.observation import Observation
from gateway.protocol import ChatCompletionRequest

log = logging.getLogger(__name__)

ADAPTER_VERSION_HEADER = "x-adapter-version"


class InferenceService:
    def __init__(
        self,
        engine: GrammarGate,
        targets: TargetResolver,
        limits: LimitSettings,
        recorder: Recorder,
        structured: StructuredRunner | None = None,
        sticky_header: str | None = None,
    ) -> None:
        self.admission = Admission(limits.max_concurrent, limits.max_concurrent_per_key)
        self.engine = engine
        self.targets = targets
        self.limits = limits
        self.recorder = recorder
        self.structured = structured
        # The request header that keeps a canary caller on one version (see complete).
        self.sticky_header = sticky_header
        self._shadows: set[asyncio.Task[None]] = set()

    async def complete(
        self, endpoint: str, request: AnyRequest, observation: Observation, request_id: str,
        caller: str | None = None, sticky: str | None = None,
    ) -> Reply:
        """Answers one chat or text completion request (a dict, or SSE bytes when streaming).

        ``caller`` is the API key's name (None without keys), for the fair-share limits.
        During a canary rollout the same ``sticky`` key (the configured header's value, else
        the caller, else the request id) always gets the same adapter version.
        """
        observation.endpoint = endpoint
        self._check_limits(request)
        started = time.perf_counter()
        async with AsyncExitStack() as held:
            held.enter_context(self.admission.admit(caller))
            lease = await self.targets.acquire(request.model, sticky or caller or request_id)
            target = await held.enter_async_context(lease)
            observation.adapter = target.label
            # Tells clients which weights answered, across hot swaps (e.g. for a canary).
            headers = {ADAPTER_VERSION_HEADER: target.version} if target.version else {}
            call = Call(endpoint, request, target, _engine_body(request, target), observation,
                        request_id)
            self._shadow(call)
            try:
                answer = await _until_cut(self._answer(call, held), lease, target)
            except GatewayError as exc:
                # A 422 (every attempt deviated) is the version's format, not a failure.
                _report(target, Outcome(error=http_status(exc) >= 500,
                                        deviated=observation.first_deviated))
                exc.headers = {**headers, **exc.headers}
                raise
            _report(target, Outcome(error=False, latency_s=time.perf_counter() - started,
                                    deviated=observation.first_deviated))
        answer.headers = {**headers, **answer.headers}
        return answer

    def _shadow(self, call: Call) -> None:
        """Sends a copy of the request to a rollout's candidate, if one is due, in the
        background: its answer is checked and recorded, never returned, never waited for."""
        lease = self.targets.shadow(call.request.model, random.random())
        if lease is None:
            return
        task = asyncio.create_task(self._shadow_answer(call, lease))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow_answer(self, call: Call, lease: TargetLease) -> None:
        started = time.perf_counter()
        async with lease as target:
            copy = Call(call.endpoint, call.request, target, _engine_body(call.request, target),
                        Observation(), f"{call.request_id}-shadow")
            try:
                if self.structured is not None:
                    deviated = await self.structured.check_once(copy, self._quiet)
                else:
                    await self._quiet(copy, _whole(copy.body))
                    deviated = None
            except GatewayError as exc:
                _report(target, Outcome(error=http_status(exc) >= 500))
                return
            except Exception:
                log.exception("shadow request %s failed", copy.request_id)
                _report(target, Outcome(error=True))
                return
            _report(target, Outcome(error=False, latency_s=time.perf_counter() - started,
                                    deviated=deviated))

    async def _quiet(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """A shadow copy's engine call: nothing counted in the gateway's request metrics
        (the rollout keeps the candidate's numbers)."""
        return await self.engine.post(call.path, body, call.request_id)

    async def shadows_settled(self) -> None:
        """Waits for the shadow copies running now."""
        await asyncio.gather(*self._shadows, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancels the shadow requests still running (at shutdown)."""
        for task in list(self._shadows):
            task.cancel()
        await asyncio.gather(*self._shadows, return_exceptions=True)

    async def _answer(self, call: Call, held: AsyncExitStack) -> Reply:
        if self.structured is not None:
            structured = await self.structured.answer(call, self)
            if structured is not None:
                return structured
        if call.request.stream:
            # The stream holds the lease from here on, and leaves it when it ends.
            return Reply(await _primed(self._stream(call, held.pop_all())))
        answer = await self.forward(call, call.body)
        answer["model"] = call.target.public_name
        return Reply(answer)

    async def forward(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """Sends one non-streaming request to the engine and counts its tokens."""
        started = time.perf_counter()
        try:
            answer = await self.engine.post(call.path, body, call.request_id)
        finally:
            self._upstream_time(call, time.perf_counter() - started)
        self._count_tokens(call, answer.get("usage"))
        return answer

    @asynccontextmanager
    async def events(
        self, call: Call, body: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Sends one streaming request; yields its parsed events, and counts its tokens.

        Leaving early closes the connection, and the engine stops generating.
        """
        stats = StreamStats()
        try:
            async with self.engine.stream(call.path, body, call.request_id) as lines, \
                    aclosing(_observed(events(lines), stats)) as observed:
                yield observed
        finally:
            self._upstream_time(call, time.perf_counter() - stats.started)
            self._count_tokens(call, stats.usage)

    async def _stream(self, call: Call, lease: AsyncExitStack) -> AsyncIterator[bytes]:
        body = dict(call.body)
        client_wants_usage = bool(call.request.stream_options
                                  and call.request.stream_options.include_usage)
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        stats = StreamStats()
        async with lease:
            try:
                async with self.engine.stream(call.path, body, call.request_id) as lines:
                    async for event in relay(lines, call.target.public_name, stats,
                                             keep_usage=client_wants_usage):
                        yield event
            except GatewayError as exc:
                if stats.events == 0:
                    raise
                log.warning("stream %s broke: %s", call.request_id, exc.message)
                call.observation.failed_status = http_status(exc)
                yield error_event(exc, internals=call.observation.sees_internals,
                                  request_id=call.request_id)
            finally:
                self._upstream_time(call, time.perf_counter() - stats.started)
                self._record_stream(call, stats)

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
        self.recorder.upstream(call.target.label, call.endpoint, seconds)

    def _count_tokens(self, call: Call, usage: Any) -> None:
        if isinstance(usage, dict):
            self.recorder.tokens(call.target.label, int(usage.get("prompt_tokens") or 0),
                                 int(usage.get("completion_tokens") or 0))

    def _record_stream(self, call: Call, stats: StreamStats) -> None:
        self._count_tokens(call, stats.usage)
        self.recorder.stream_timing(call.target.label, stats.time_to_first_token, stats.gaps)


def _report(target: ModelTarget, outcome: Outcome) -> None:
    if target.report is not None:
        target.report(outcome)


def _whole(body: dict[str, Any]) -> dict[str, Any]:
    """A shadow copy of free text: the request as sent, whole (not streamed)."""
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


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


async def _observed(
    stream: AsyncIterator[dict[str, Any]], stats: StreamStats
) -> AsyncGenerator[dict[str, Any]]:
    async for event in stream:
        observe(event, stats)
        yield event


async def _until_cut(answering: Awaitable[Reply], lease: TargetLease, target: ModelTarget
                     ) -> Reply:
    """The reply, unless the version's drain deadline passes first (AdapterVersionCut);
    a stream is ended by the same deadline with an error event."""
    cut = lease.cut
    if cut is None:
        return await answering
    if cut.is_set():
        if inspect.iscoroutine(answering):
            answering.close()
        raise AdapterVersionCut(target.adapter, target.version or "")
    work = asyncio.ensure_future(answering)
    waiter = asyncio.ensure_future(cut.wait())
    try:
        await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, GatewayError):
                await work
    if not work.done() or work.cancelled():
        raise AdapterVersionCut(target.adapter, target.version or "")
    reply = work.result()
    if not isinstance(reply.body, dict):
        reply.body = _cut_stream(reply.body, cut, target)
    return reply


async def _cut_stream(stream: AsyncIterator[bytes], cut: asyncio.Event, target: ModelTarget
                      ) -> AsyncIterator[bytes]:
    """Relays ``stream`` until the version is cut: then an error event, and the engine's
    stream is closed, even while it waits for its next token."""
    waiter = asyncio.ensure_future(cut.wait())
    step: asyncio.Future[bytes] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(stream))
            await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                yield error_event(AdapterVersionCut(target.adapter, target.version or ""))
                return
            try:
                event = step.result()
            except StopAsyncIteration:
                return
            step = None
            yield event
    finally:
        waiter.cancel()
        if step is not None and not step.done():
            step.cancel()
            with contextlib.suppress(BaseException):
                await step
        closing = getattr(stream, "aclose", None)
        if closing is not None:
            await closing()


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
