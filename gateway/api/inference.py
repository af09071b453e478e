"""Chat and text completions (OpenAI-compatible)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway.api.errors import sees_internals
from gateway.auth import Principal
from gateway.deps import InferenceDep, MonitorDep, ObservationDep, RequestIdDep, UserDep
from gateway.errors import ClientClosedRequest
from gateway.inference.call import CHAT, COMPLETIONS, Reply
from gateway.protocol import ChatCompletionRequest, CompletionRequest

router = APIRouter(tags=["inference"])

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    service: InferenceDep,
    monitor: MonitorDep,
    observation: ObservationDep,
    request_id: RequestIdDep,
    caller: UserDep,
) -> Response:
    """Creates a chat completion; streams server-sent events with `stream: true`."""
    monitor.require_ready()
    observation.sees_internals = sees_internals(request)
    answer = service.complete(CHAT, body, observation, request_id, caller_name(caller),
                              sticky(request, service.sticky_header))
    return respond(await unless_client_leaves(request, answer))


@router.post("/v1/completions")
async def completions(
    body: CompletionRequest,
    request: Request,
    service: InferenceDep,
    monitor: MonitorDep,
    observation: ObservationDep,
    request_id: RequestIdDep,
    caller: UserDep,
) -> Response:
    """Creates a text completion; streams server-sent events with `stream: true`."""
    monitor.require_ready()
    observation.sees_internals = sees_internals(request)
    answer = service.complete(COMPLETIONS, body, observation, request_id, caller_name(caller),
                              sticky(request, service.sticky_header))
    return respond(await unless_client_leaves(request, answer))


def caller_name(caller: Principal | None) -> str | None:
    return caller.name if caller is not None else None


def sticky(request: Request, header: str | None) -> str | None:
    """The configured header's value: what keeps a canary caller on one version."""
    return request.headers.get(header) if header else None


def respond(answer: Reply) -> Response:
    if isinstance(answer.body, dict):
        return JSONResponse(answer.body, headers=answer.headers)
    return StreamingResponse(answer.body, media_type="text/event-stream",
                             headers={**_SSE_HEADERS, **answer.headers})


async def unless_client_leaves(request: Request, work: Awaitable[Reply]) -> Reply:
    """``work``'s answer; cancelled (with the engine call and any retries) if the client
    disconnects first. A stream is left to the server: it stops when sending fails."""
    task = asyncio.ensure_future(work)
    departed = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({task, departed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        departed.cancel()
        if not task.done():  # the client left (or the server is stopping)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientClosedRequest("The client closed the connection before the answer.")
    return task.result()


async def _disconnected(request: Request) -> None:
    # The body has been read: what the server delivers next is the disconnect, if any.
    while (await request.receive())["type"] != "http.disconnect":
        pass
