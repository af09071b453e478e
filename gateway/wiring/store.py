"""The adapter store for the app's lifespan: policy from settings, load at start, watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from contextlib import AsyncExitStack
from pathlib import Path

from gateway.adapters.base_model import BaseModelSpec
from gateway.adapters.service import AdapterService
from gateway.adapters.settings import AdapterSettings
from gateway.adapters.validation import AdapterPolicy
from gateway.adapters.watcher import AdapterWatcher
from gateway.config import Settings
from gateway.engine.monitor import EngineMonitor

log = logging.getLogger(__name__)


def adapter_policy(settings: Settings) -> AdapterPolicy:
    """What adapters are checked against: the served base model and the engine's limits."""
    names = [settings.engine.model, *settings.engine.base_model_aliases]
    config = _base_config_path(settings)
    if config is not None and config.is_file():
        base = BaseModelSpec.from_hf_config(json.loads(config.read_text()), names)
    else:
        base = BaseModelSpec.smollm2_135m(names)
    return AdapterPolicy.build(settings.adapters.roots, base, settings.engine.max_lora_rank,
                               settings.adapters.limits)


def _base_config_path(settings: Settings) -> Path | None:
    if settings.adapters.base_model_config is not None:
        return settings.adapters.base_model_config
    if settings.engine.mode == "embedded":
        return settings.engine.model_folder() / "config.json"
    return None


async def keep_store_loaded(
    service: AdapterService,
    monitor: EngineMonitor,
    settings: AdapterSettings,
    stack: AsyncExitStack,
) -> None:
    """Loads the store once the engine is ready (and again after it restarts); watches it."""
    watcher = AdapterWatcher(service.policy, debounce_ms=settings.watch_debounce_ms)
    task = asyncio.create_task(_serve_store(service, monitor, watcher, settings.watch),
                               name="adapter-store")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)


async def _serve_store(
    service: AdapterService, monitor: EngineMonitor, watcher: AdapterWatcher, watch: bool
) -> None:
    await monitor.became_ready.wait()
    monitor.became_ready.clear()
    result = await asyncio.to_thread(watcher.initial_scan)
    await service.load_store(result)
    service.store_loaded.set()
    log.info("adapter store loaded: %d adapters, %d folders refused",
             len(result.valid), len(result.invalid))
    tasks = [asyncio.create_task(_reload_after_restarts(service, monitor))]
    if watch:
        tasks.append(asyncio.create_task(watcher.run(service.on_event)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def _reload_after_restarts(service: AdapterService, monitor: EngineMonitor) -> None:
    while True:
        await monitor.became_ready.wait()
        monitor.became_ready.clear()
        log.warning("the engine came back: loading every adapter into it again")
        await service.reload_engine()
