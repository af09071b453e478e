"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.auth import Authenticator, Principal
from gateway.engine.monitor import EngineMonitor
from gateway.inference.service import InferenceService
from gateway.observation import Observation, observation_of
from gateway.responses.service import ResponsesService


def _auth(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.auth
    return authenticator


async def require_user(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal | None:
    return _remembered(request, _auth(request).authenticate(authorization, "user"))


async def require_admin(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal | None:
    return _remembered(request, _auth(request).authenticate(authorization, "admin"))


async def require_unless_public(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal | None:
    if request.url.path in request.app.state.settings.auth.public_paths:
        return None
    return _remembered(request, _auth(request).authenticate(authorization, "user"))


async def require_scraper(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal | None:
    """A ``metrics`` or ``admin`` key, unless the path is configured public."""
    if request.url.path in request.app.state.settings.auth.public_paths:
        return None
    return _remembered(request, _auth(request).authenticate(authorization, "metrics"))


def _remembered(request: Request, principal: Principal | None) -> Principal | None:
    """The caller, kept for the error handler: only admin keys read the gateway's internals."""
    request.state.principal = principal
    return principal


async def _inference(request: Request) -> InferenceService:
    service: InferenceService = request.app.state.inference
    return service


async def _responses(request: Request) -> ResponsesService:
    service: ResponsesService = request.app.state.responses
    return service


async def _monitor(request: Request) -> EngineMonitor:
    monitor: EngineMonitor = request.app.state.monitor
    return monitor


async def _observation(request: Request) -> Observation:
    return observation_of(request.scope)


async def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


UserDep = Annotated[Principal | None, Depends(require_user)]
AdminDep = Annotated[Principal | None, Depends(require_admin)]
PublicDep = Annotated[Principal | None, Depends(require_unless_public)]
ScraperDep = Annotated[Principal | None, Depends(require_scraper)]
InferenceDep = Annotated[InferenceService, Depends(_inference)]
ResponsesDep = Annotated[ResponsesService, Depends(_responses)]
MonitorDep = Annotated[EngineMonitor, Depends(_monitor)]
ObservationDep = Annotated[Observation, Depends(_observation)]
RequestIdDep = Annotated[str, Depends(_request_id)]
