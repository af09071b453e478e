"""Chat and text completions (OpenAI-compatible)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway.deps import InferenceDep, MonitorDep, ObservationDep, RequestIdDep, UserDep
from gateway.inference.call import CHAT, COMPLETIONS, Answer
from gateway.protocol import ChatCompletionRequest, CompletionRequest

router = APIRouter(tags=["inference"])

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest,
    service: InferenceDep,
    monitor: MonitorDep,
    observation: ObservationDep,
    request_id: RequestIdDep,
    _: UserDep,
) -> Response:
    """Creates a chat completion; streams server-sent events with `stream: true`."""
    monitor.require_ready()
    return _respond(await service.complete(CHAT, body, observation, request_id))


@router.post("/v1/completions")
async def completions(
    body: CompletionRequest,
    service: InferenceDep,
    monitor: MonitorDep,
    observation: ObservationDep,
    request_id: RequestIdDep,
    _: UserDep,
) -> Response:
    """Creates a text completion; streams server-sent events with `stream: true`."""
    monitor.require_ready()
    return _respond(await service.complete(COMPLETIONS, body, observation, request_id))


def _respond(answer: Answer) -> Response:
    if isinstance(answer.body, dict):
        return JSONResponse(answer.body, headers=answer.headers)
    return StreamingResponse(answer.body, media_type="text/event-stream",
                             headers={**_SSE_HEADERS, **answer.headers})
