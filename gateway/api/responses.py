"""The Responses API (OpenAI-compatible): create, retrieve, delete, list input items."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gateway.api.errors import sees_internals
from gateway.api.inference import caller_name, respond, sticky, unless_client_leaves
from gateway.deps import (
    MonitorDep,
    ObservationDep,
    RequestIdDep,
    ResponsesDep,
    UserDep,
)
from gateway.responses.wire import ResponsesRequest

router = APIRouter(tags=["responses"])


@router.post("/v1/responses")
async def create_response(
    body: ResponsesRequest,
    request: Request,
    service: ResponsesDep,
    monitor: MonitorDep,
    observation: ObservationDep,
    request_id: RequestIdDep,
    caller: UserDep,
) -> Response:
    """Creates a response; streams the Responses events with `stream: true`."""
    monitor.require_ready()
    observation.sees_internals = sees_internals(request)
    answer = service.create(body, observation, request_id, caller_name(caller),
                            sticky(request, service.inference.sticky_header))
    return respond(await unless_client_leaves(request, answer))


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, service: ResponsesDep,
                       caller: UserDep) -> dict[str, Any]:
    """A stored response made with this key."""
    return await service.get(caller_name(caller), response_id)


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, service: ResponsesDep,
                          caller: UserDep) -> dict[str, Any]:
    """Deletes a stored response made with this key."""
    return await service.delete(caller_name(caller), response_id)


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str, service: ResponsesDep, caller: UserDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    """The input items of a stored response, a page at a time."""
    return await service.input_items(caller_name(caller), response_id, limit=limit,
                                     order=order, after=after)
