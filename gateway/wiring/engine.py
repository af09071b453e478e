"""Starts the embedded engine for the app's lifespan: prepare the model, start vLLM."""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import AsyncExitStack
from pathlib import Path

from gateway.adapters.settings import AdapterSettings
from gateway.engine.keeper import EngineKeeper
from gateway.engine.model_prep import is_prepared, prepare_model
from gateway.engine.monitor import EngineMonitor
from gateway.engine.settings import EngineSettings
from gateway.engine.supervisor import VllmServerSpec, VllmSupervisor
from gateway.metrics import Recorder

log = logging.getLogger(__name__)


async def start_embedded_engine(
    engine: EngineSettings, stack: AsyncExitStack, adapters: AdapterSettings | None = None,
) -> tuple[VllmSupervisor, str]:
    """Starts the local vLLM server (stopped when ``stack`` closes); it and its API key.

    The key is new for each start of the gateway and known only to this process: no other
    local process can load an adapter into the engine past the gateway's checks.

    Returns as soon as the process runs: readiness is tracked by the engine monitor,
    so /health answers and /ready says "not ready" while the model loads; the
    :func:`keep_engine` keeper restarts it if it fails.
    """
    model = await _model_folder(engine)
    key = new_engine_key()
    supervisor = VllmSupervisor(spec_from(engine, model, key, resolver_env(adapters)))
    await supervisor.start()
    stack.push_async_callback(supervisor.stop)
    return supervisor, key


def keep_engine(
    supervisor: VllmSupervisor, monitor: EngineMonitor, recorder: Recorder,
    engine: EngineSettings, stack: AsyncExitStack,
) -> EngineKeeper:
    """Restarts the engine when it fails, until ``stack`` closes (before the engine stops)."""
    keeper = EngineKeeper(supervisor, monitor, recorder, engine.restart,
                          startup_timeout_s=engine.startup_timeout_s)
    keeper.start()
    stack.push_async_callback(keeper.stop)
    return keeper


def new_engine_key() -> str:
    return secrets.token_urlsafe(32)


def resolver_env(adapters: AdapterSettings | None) -> dict[str, str]:
    """What an embedded engine needs to load adapters from the resolver store."""
    if adapters is None or adapters.publish != "resolver":
        return {}
    folder = adapters.resolver.dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return {"VLLM_PLUGINS": "lora_filesystem_resolver",
            "VLLM_LORA_RESOLVER_CACHE_DIR": str(folder)}


def spec_from(engine: EngineSettings, model: Path, api_key: str | None = None,
              extra_env: dict[str, str] | None = None) -> VllmServerSpec:
    return VllmServerSpec(
        extra_env=extra_env or {},
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
        chat_template=engine.chat_template,
        tool_call_parser=engine.tool_call_parser,
        extra_args=tuple(engine.extra_args),
        log_file=engine.log_file,
    )


async def _model_folder(engine: EngineSettings) -> Path:
    target = engine.model_folder()
    if not is_prepared(target):
        log.info("preparing the bundled model in %s (once; about a minute)", target)
        await asyncio.to_thread(prepare_model, target)
    return target
