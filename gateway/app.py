"""The app factory: builds the FastAPI app; the lifespan wires services onto app.state."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from gateway.adapters.serving.claims import ClaimBoard
from gateway.adapters.serving.notices import RolloutNotices
from gateway.adapters.serving.registry import AdapterRegistry
from gateway.adapters.serving.service import AdapterService
from gateway.api import adapters, health, inference, metrics, models, responses
from gateway.api.errors import install_error_handlers
from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.engine.client import EngineClient
from gateway.engine.monitor import EngineMonitor
from gateway.engine.supervisor import VllmSupervisor
from gateway.grammar.gate import GrammarGate
from gateway.inference.service import InferenceService
from gateway.inference.structured import build_structured_runner
from gateway.inference.targets import TargetResolver
from gateway.metrics import GatewayMetrics
from gateway.middleware import BodyLimitMiddleware, RequestContextMiddleware
from gateway.privacy.redaction import Redactor
from gateway.responses.service import ResponsesService
from gateway.responses.store import ResponseStore
from gateway.wiring.engine import keep_engine, start_embedded_engine
from gateway.wiring.grammar import grammar_checker
from gateway.wiring.metrics import gateway_metrics as build_metrics
from gateway.wiring.store import (
    adapter_policy,
    base_model_config,
    check_engine_model,
    keep_store_loaded,
    publisher,
    resolver_base_model,
)

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """Builds the gateway from its settings; nothing starts until the lifespan runs."""
    if settings.engine.mode == "remote":
        base_model_config(settings)  # a missing one is a start-up error, not a later surprise
    resolver_base_model(settings)
    gateway_metrics = build_metrics(settings.metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await _wire(app, settings, gateway_metrics, stack)
            yield

    docs = settings.api_docs()
    app = FastAPI(title="adapter-gateway", version="0.1.0", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.settings = settings
    app.state.metrics = gateway_metrics
    app.state.auth = Authenticator(settings.api_keys())
    install_error_handlers(app)
    for module in (inference, responses, models, adapters, health, metrics):
        app.include_router(module.router)
    app.add_api_route(settings.metrics.engine_metrics_path, metrics.engine_metrics,
                      methods=["GET"], tags=["metrics"])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, recorder=gateway_metrics.record)
    return app


async def _wire(
    app: FastAPI, settings: Settings, gateway_metrics: GatewayMetrics, stack: AsyncExitStack
) -> None:
    recorder = gateway_metrics.record
    engine, supervisor = await _engine(settings, stack)
    monitor = EngineMonitor(engine, recorder, settings.engine.health_interval_s)
    await monitor.check()
    monitor.start()
    stack.push_async_callback(monitor.stop)
    app.state.keeper = (None if supervisor is None
                        else keep_engine(supervisor, monitor, recorder, settings.engine, stack))
    grammars = grammar_checker(settings, recorder)
    if grammars is not None:
        if settings.structured.grammar_check.start_early:
            grammars.warm()
        stack.push_async_callback(grammars.aclose)
    structured = build_structured_runner(settings.structured, recorder, grammars)
    adapter_service = AdapterService(
        AdapterRegistry(), adapter_policy(settings), engine, recorder,
        staging_root=settings.adapters.staging_dir,
        drain_timeout_s=settings.drain_deadline_s(),
        load_wait_s=settings.adapters.load_wait_s,
        schema_names=structured.schemas.names,
        rollout_policy=settings.adapters.rollout,
        rollouts_file=settings.adapters.rollouts_file,
        publisher=publisher(settings, engine),
        claims=ClaimBoard(settings.adapters.claims_folder(),
                          refresh_s=settings.adapters.claims_refresh_s),
        notices=RolloutNotices(settings.adapters.notices_folder()),
    )
    stack.push_async_callback(adapter_service.aclose)
    engine_model = settings.engine.model, settings.engine.max_model_len
    await keep_store_loaded(adapter_service, monitor, settings.adapters, stack,
                            on_ready=lambda: check_engine_model(engine, *engine_model))
    targets = TargetResolver(settings.engine.model, recorder, adapter_service)
    app.state.engine = engine
    app.state.monitor = monitor
    app.state.adapters = adapter_service
    app.state.targets = targets
    app.state.started_at = int(time.time())
    app.state.grammars = grammars
    app.state.inference = InferenceService(GrammarGate(engine, grammars), targets,
                                           settings.limits, recorder, structured,
                                           settings.adapters.rollout_sticky_header)
    stack.push_async_callback(app.state.inference.aclose)
    app.state.responses = ResponsesService(
        app.state.inference, ResponseStore(settings.responses),
        Redactor(settings.structured.capture.redact))
    if not settings.auth_enabled:
        log.warning("no API keys configured: every endpoint is open to local callers")


async def _engine(
    settings: Settings, stack: AsyncExitStack
) -> tuple[EngineClient, VllmSupervisor | None]:
    urls, key = settings.engine.urls, settings.engine_api_key()
    supervisor = None
    if settings.engine.mode == "embedded":
        supervisor, key = await start_embedded_engine(settings.engine, stack, settings.adapters)
        urls = [supervisor.base_url]
    engine = EngineClient(
        urls,
        api_key=key,
        connect_timeout=settings.engine.connect_timeout_s,
        read_timeout=settings.engine.read_timeout_s,
        max_connections=settings.engine.max_connections,
        eject_after=settings.engine.eject_after_errors,
        max_backoff_s=settings.engine.eject_max_backoff_s,
    )
    stack.push_async_callback(engine.aclose)
    return engine, supervisor
