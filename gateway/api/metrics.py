"""Prometheus exposition: the gateway's metrics and the engine's own."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.deps import ScraperDep
from gateway.engine.client import EngineClient
from gateway.errors import UpstreamError
from gateway.metrics import GatewayMetrics, render

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
async def metrics(request: Request, _: ScraperDep) -> Response:
    """The gateway's metrics in Prometheus text format."""
    registry: GatewayMetrics = request.app.state.metrics
    return Response(render(registry), media_type=CONTENT_TYPE_LATEST)


async def engine_metrics(request: Request, _: ScraperDep) -> Response:
    """The engine's own (vLLM) metrics, proxied from its first server."""
    engine: EngineClient = request.app.state.engine
    upstream = await engine.get_raw(f"{engine.urls[0]}/metrics")
    if upstream.status != 200:
        raise UpstreamError(f"the engine's /metrics answered {upstream.status}")
    return Response(upstream.body, media_type=CONTENT_TYPE_LATEST)
