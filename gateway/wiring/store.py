"""The adapter store for the app's lifespan: policy from settings, load at start, watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

from gateway._sections import PROJECT_ROOT
from gateway.adapters.serving.publish import Publisher, ResolverPublisher, RuntimePublisher
from gateway.adapters.serving.service import AdapterService
from gateway.adapters.settings import AdapterSettings
from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.validation import AdapterPolicy
from gateway.adapters.store.watcher import AdapterWatcher
from gateway.config import Settings
from gateway.engine.client import EngineClient
from gateway.engine.monitor import EngineMonitor
from gateway.errors import GatewayError

log = logging.getLogger(__name__)

# The bundled model's config.json, for a remote engine that serves it.
BUNDLED_BASE_CONFIG = PROJECT_ROOT / "config" / "base-models" / "SmolLM2-135M-Instruct.json"


def adapter_policy(settings: Settings) -> AdapterPolicy:
    """What adapters are checked against: the served base model and the engine's limits."""
    names = [settings.engine.model, *settings.engine.base_model_aliases]
    config = base_model_config(settings)
    base = BaseModelSpec.from_hf_config(json.loads(config.read_text()), names)
    return AdapterPolicy.build(settings.adapters.roots, base, settings.engine.max_lora_rank,
                               settings.adapters.limits)


def base_model_config(settings: Settings) -> Path:
    """The served base model's ``config.json``; a ValueError says how to fix a missing one.

    Adapters are checked against its shapes: guessing them would refuse every adapter of
    another base model.
    """
    configured = settings.adapters.base_model_config
    if configured is None and settings.engine.mode == "remote":
        raise ValueError(
            "engine.mode is 'remote' but adapters.base_model_config is not set: point it at "
            "the served base model's config.json (for the bundled model: "
            f"{BUNDLED_BASE_CONFIG.relative_to(PROJECT_ROOT)})")
    path = configured or settings.engine.model_folder() / "config.json"
    if not path.is_file():
        raise ValueError(f"the base model's config {path} does not exist; fix "
                         "adapters.base_model_config (or prepare the embedded model)")
    return path


def resolver_base_model(settings: Settings) -> str | None:
    """The engines' --model argument, for ``publish: resolver``; a ValueError when unknown."""
    if settings.adapters.publish != "resolver":
        return None
    configured = settings.adapters.resolver.base_model
    if configured:
        return configured
    if settings.engine.mode == "embedded":
        return str(settings.engine.model_folder())
    raise ValueError(
        "adapters.publish is 'resolver' but adapters.resolver.base_model is not set: give "
        "the engines' --model argument exactly as they were started with (vLLM's resolver "
        "loads only adapters whose adapter_config.json names it)")


def publisher(settings: Settings, engine: EngineClient) -> Publisher:
    """How adapter versions reach the engines (``adapters.publish``)."""
    base_model = resolver_base_model(settings)
    if base_model is None:
        return RuntimePublisher(engine)
    return ResolverPublisher(engine, settings.adapters.resolver.dir, base_model,
                             probe=settings.adapters.resolver.probe)


async def keep_store_loaded(
    service: AdapterService,
    monitor: EngineMonitor,
    settings: AdapterSettings,
    stack: AsyncExitStack,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Loads the store once the engine is ready (and again after it restarts); watches it.

    ``on_ready`` runs first, once the engine answers (start-up checks against it).
    """
    watcher = AdapterWatcher(service.policy, debounce_ms=settings.watch_debounce_ms)
    task = asyncio.create_task(_serve_store(service, monitor, watcher, settings.watch, on_ready),
                               name="adapter-store")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)


async def _serve_store(
    service: AdapterService, monitor: EngineMonitor, watcher: AdapterWatcher, watch: bool,
    on_ready: Callable[[], Awaitable[None]] | None,
) -> None:
    # Claims stay fresh from the first load on, however long the store takes (a large
    # copy, a queued probe): other processes judge them by their age.
    tasks = [asyncio.create_task(service.keep_claims())]
    try:
        await monitor.became_ready.wait()
        monitor.became_ready.clear()
        if on_ready is not None:
            await on_ready()
        result = await asyncio.to_thread(watcher.initial_scan)
        await service.load_store(result)
    except BaseException:
        tasks[0].cancel()
        raise
    service.store_loaded.set()
    log.info("adapter store loaded: %d adapters, %d folders refused",
             len(result.valid), len(result.invalid))
    tasks.append(asyncio.create_task(_reload_after_restarts(service, monitor)))
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


async def check_engine_model(engine: EngineClient, model: str, max_model_len: int) -> None:
    """Logs an error when the engine does not serve ``model`` with the configured context.

    The gateway's limits and timeouts assume ``engine.max_model_len``; an engine started
    without ``--max-model-len`` takes the model's own (128k for Llama 3.1), which does not
    fit a small GPU and makes long prompts behave unlike the configuration says.
    """
    try:
        answer = await engine.get_raw(f"{engine.urls[0]}/v1/models")
        cards = json.loads(answer.body).get("data") or []
    except (GatewayError, ValueError, AttributeError) as exc:
        log.error("could not read the engine's models to check max_model_len: %s", exc)
        return
    served = {card.get("id"): card for card in cards if isinstance(card, dict)}
    if model not in served:
        log.error("the engine does not serve %r (it serves %s); set engine.model to the "
                  "engine's --served-model-name", model, sorted(map(str, served)))
        return
    reported = served[model].get("max_model_len")
    if isinstance(reported, int) and reported != max_model_len:
        log.error("the engine serves %r with max_model_len=%d, but engine.max_model_len is %d; "
                  "start vLLM with --max-model-len %d or set engine.max_model_len to %d",
                  model, reported, max_model_len, max_model_len, reported)
