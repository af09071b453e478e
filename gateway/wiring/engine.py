"""Starts the embedded engine for the app's lifespan: prepare the model, start vLLM."""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import AsyncExitStack
from pathlib import Path

from gateway.engine.model_prep import is_prepared, prepare_model
from gateway.engine.settings import EngineSettings
from gateway.engine.supervisor import VllmServerSpec, VllmSupervisor

log = logging.getLogger(__name__)


async def start_embedded_engine(
    engine: EngineSettings, stack: AsyncExitStack
) -> tuple[str, str]:
    """Starts the local vLLM server (stopped when ``stack`` closes); its URL and API key.

    The key is new for each start and known only to this process: no other local process
    can load an adapter into the engine past the gateway's checks.

    Returns as soon as the process runs: readiness is tracked by the engine monitor,
    so /health answers and /ready says "not ready" while the model loads.
    """
    model = await _model_folder(engine)
    key = new_engine_key()
    supervisor = VllmSupervisor(spec_from(engine, model, key))
    await supervisor.start()
    stack.push_async_callback(supervisor.stop)
    waiter = asyncio.create_task(_report_ready(supervisor, engine.startup_timeout_s))
    stack.callback(waiter.cancel)
    return supervisor.base_url, key


def new_engine_key() -> str:
    return secrets.token_urlsafe(32)


def spec_from(engine: EngineSettings, model: Path, api_key: str | None = None) -> VllmServerSpec:
    return VllmServerSpec(
        api_key=api_key,
        model=str(model),
        served_model_name=engine.model,
        host=engine.host,
        port=engine.port,
        python=engine.python,
        max_lora_rank=engine.max_lora_rank,
        max_loras=engine.max_loras,
        max_cpu_loras=engine.max_cpu_loras,
        max_model_len=engine.max_model_len,
        kv_cache_gib=engine.kv_cache_gib,
        extra_args=tuple(engine.extra_args),
        log_file=engine.log_file,
    )


async def _model_folder(engine: EngineSettings) -> Path:
    target = engine.model_folder()
    if not is_prepared(target):
        log.info("preparing the bundled model in %s (once; about a minute)", target)
        await asyncio.to_thread(prepare_model, target)
    return target


async def _report_ready(supervisor: VllmSupervisor, timeout: float) -> None:
    try:
        await supervisor.wait_ready(timeout)
    except Exception as exc:  # the monitor keeps /ready at 503; the reason goes to the log
        log.error("the embedded engine did not start: %s", exc)
