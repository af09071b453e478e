"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway.deps import MonitorDep, PublicDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(_: PublicDep) -> dict[str, str]:
    """The gateway process is alive."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(monitor: MonitorDep, _: PublicDep) -> JSONResponse:
    """The engine answers; 503 until it does. Load balancers should gate traffic on this."""
    if await monitor.check():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not_ready", "reason": monitor.reason}, status_code=503)
