"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.adapters.serving.service import AdapterService
from gateway.deps import MonitorDep, PublicDep
from gateway.engine.keeper import EngineKeeper

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request, _: PublicDep) -> JSONResponse:
    """The gateway is alive: 503 once its embedded engine failed for good (restart the gateway)."""
    keeper: EngineKeeper | None = getattr(request.app.state, "keeper", None)
    if keeper is not None and keeper.failure is not None:
        return JSONResponse({"status": "failing", "reason": keeper.failure}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready")
async def ready(request: Request, monitor: MonitorDep, _: PublicDep) -> JSONResponse:
    """The engine answers and the adapter store is loaded; 503 until then. Gate traffic on it.

    ``engine_servers`` lists each configured engine server: admitted to traffic, or
    ejected (with why, and when it may come back).
    """
    servers = monitor.servers
    if not await monitor.check():
        return _not_ready(monitor.reason, servers())
    adapters: AdapterService = request.app.state.adapters
    if not adapters.store_loaded.is_set():
        return _not_ready("the adapters in the store are being loaded", servers())
    return JSONResponse({"status": "ready", "engine_servers": servers()})


def _not_ready(reason: str, servers: list[dict[str, object]]) -> JSONResponse:
    return JSONResponse({"status": "not_ready", "reason": reason, "engine_servers": servers},
                        status_code=503)
