"""The engine keeper restarts a failed engine, and gives up as configured.

The engine here is a fake that speaks vLLM's protocol, run exactly where the gateway
runs vLLM (``engine.python``), so the whole embedded path is exercised: supervisor,
keeper, monitor, adapter reload.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.engine.client import EngineClient
from gateway.engine.keeper import EXIT_ENGINE_FAILED, EngineKeeper, RestartSettings
from gateway.engine.model_prep import MARKER
from gateway.engine.monitor import EngineMonitor
from gateway.engine.supervisor import VllmServerSpec, VllmSupervisor
from gateway.wiring.metrics import gateway_metrics
from gateway.wiring.store import BUNDLED_BASE_CONFIG
from tests.adapter_factory import write_adapter
from tests.conftest import start
from tests.engine.test_supervisor import FAKE_VLLM
from tests.fakes.serve import fake_vllm_python
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.anyio

MODEL = "base-model"
RESTART = {"max_backoff_s": 0.05, "unresponsive_after_s": 1, "max_restarts": 2}


async def until(check: Callable[[], Any], guard: float = 60.0) -> None:
    """Waits for ``check`` to hold; ``guard`` only stops a hang."""
    async with asyncio.timeout(guard):
        while not await _call(check):
            await asyncio.sleep(0.05)


async def _call(check: Callable[[], Any]) -> Any:
    result = check()
    return await result if asyncio.iscoroutine(result) else result


def _embedded(tmp_path: Path, python: Path, **restart: Any) -> Settings:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    shutil.copyfile(BUNDLED_BASE_CONFIG, model / "config.json")
    (model / MARKER).write_text("{}")
    return Settings.model_validate({
        "engine": {"mode": "embedded", "model": MODEL, "python": str(python),
                   "model_path": str(model), "health_interval_s": 0.2,
                   "log_file": str(tmp_path / "engine.log"), "startup_timeout_s": 60,
                   "restart": {**RESTART, **restart}},
        "adapters": {"roots": [str(tmp_path / "adapters")], "watch": False,
                     "staging_dir": str(tmp_path / "staging")},
    })


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


async def test_a_killed_engine_comes_back_with_its_adapters(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters" / "alpha", name="alpha", num_layers=30)
    app = create_app(_embedded(tmp_path, fake_vllm_python(tmp_path)))
    async for client in start(app):
        await _kill_and_recover(app.state.keeper, client)


async def _kill_and_recover(keeper: EngineKeeper, client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/chat/completions", json=_chat("alpha"))).status_code == 200
    first = keeper.supervisor.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    statuses: list[int] = []

    async def serves_alpha() -> bool:
        # Each request gets an answer (503 while the engine is down): none hangs.
        async with asyncio.timeout(30):
            response = await client.post("/v1/chat/completions", json=_chat("alpha"))
        statuses.append(response.status_code)
        return response.status_code == 200

    await until(lambda: keeper.restarts == 1)
    await until(serves_alpha)
    assert keeper.supervisor.pid != first and keeper.failure is None
    assert set(statuses) <= {200, 404, 502, 503}
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_engine_restarts_total", reason="exited") == 1
    assert (await client.get("/health")).status_code == 200


async def test_an_engine_that_keeps_failing_turns_health_red(tmp_path: Path) -> None:
    crashing = tmp_path / "crashing-python"
    crashing.write_text("#!/bin/sh\necho cannot load the model\nexit 3\n")
    crashing.chmod(0o755)
    app = create_app(_embedded(tmp_path, crashing))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url="http://gateway"
    ) as client:
        keeper: EngineKeeper = app.state.keeper
        await until(lambda: keeper.failure is not None)
        health = await client.get("/health")
        assert health.status_code == 503
        assert "restarted 2 times" in health.json()["reason"]
        assert keeper.restarts == 2
        assert (await client.post("/v1/chat/completions", json=_chat(MODEL))).status_code == 503


@pytest.fixture
async def fake_engine_parts(tmp_path: Path) -> AsyncIterator[tuple[VllmSupervisor,
                                                                   EngineMonitor]]:
    def spec(**env: str) -> VllmServerSpec:
        return VllmServerSpec(model="/m", served_model_name="base",
                              launcher=(sys.executable, "-c", FAKE_VLLM), extra_env=env,
                              log_file=tmp_path / "engine.log", stop_grace_s=0.5)

    supervisor = VllmSupervisor(spec())
    client = EngineClient([supervisor.base_url])
    monitor = EngineMonitor(client, gateway_metrics().record, interval=0.2)
    await supervisor.start()
    yield supervisor, monitor
    await supervisor.stop()
    await client.aclose()


async def test_an_engine_that_stops_answering_is_restarted(
    fake_engine_parts: tuple[VllmSupervisor, EngineMonitor],
) -> None:
    supervisor, monitor = fake_engine_parts
    recorder = gateway_metrics().record
    keeper = EngineKeeper(supervisor, monitor, recorder, RestartSettings(**RESTART),
                          startup_timeout_s=30, check_interval_s=0.1)
    keeper.start()
    try:
        await until(lambda: keeper.answering)
        frozen = supervisor.pid
        assert frozen is not None
        os.kill(frozen, signal.SIGSTOP)  # alive, but answers nothing
        await until(lambda: keeper.restarts == 1)
        await until(lambda: keeper.answering)
        assert supervisor.pid != frozen
        registry = recorder.metrics.registry
        assert registry.get_sample_value("gateway_engine_restarts_total",
                                         {"reason": "unresponsive"}) == 1
    finally:
        await keeper.stop()


async def test_exit_on_failure_ends_the_process_with_its_status(tmp_path: Path) -> None:
    spec = VllmServerSpec(model="/m", served_model_name="base",
                          launcher=(sys.executable, "-c", FAKE_VLLM),
                          extra_env={"FAKE_MODE": "crash"}, log_file=tmp_path / "engine.log")
    supervisor = VllmSupervisor(spec)
    client = EngineClient([supervisor.base_url])
    exits: list[int] = []
    keeper = EngineKeeper(
        supervisor, EngineMonitor(client, gateway_metrics().record, interval=1),
        gateway_metrics().record, RestartSettings(**{**RESTART, "on_failure": "exit"}),
        startup_timeout_s=30, check_interval_s=0.1, exit_process=exits.append)
    await supervisor.start()
    keeper.start()
    try:
        await until(lambda: exits)
        assert exits == [EXIT_ENGINE_FAILED]
        assert not supervisor.running
    finally:
        await keeper.stop()
        await supervisor.stop()
        await client.aclose()


def _supervisor(tmp_path: Path, **env: str) -> VllmSupervisor:
    return VllmSupervisor(VllmServerSpec(
        model="/m", served_model_name="base", launcher=(sys.executable, "-c", FAKE_VLLM),
        extra_env=env, log_file=tmp_path / "logs" / "engine.log", stop_grace_s=0.5))


async def _kept_until_failed(supervisor: VllmSupervisor, settings: RestartSettings,
                             startup_timeout_s: float = 30,
                             then: Callable[[], object] = lambda: None) -> EngineKeeper:
    """Starts the engine, does ``then``, and keeps it until the keeper gives up."""
    client = EngineClient([supervisor.base_url])
    recorder = gateway_metrics().record
    keeper = EngineKeeper(supervisor, EngineMonitor(client, recorder, interval=1), recorder,
                          settings, startup_timeout_s=startup_timeout_s, check_interval_s=0.05)
    await supervisor.start()
    then()
    keeper.start()
    try:
        await until(lambda: keeper.failure is not None)
    finally:
        await keeper.stop()
        await supervisor.stop()
        await client.aclose()
    return keeper


async def test_starts_that_never_become_healthy_are_given_up_on(tmp_path: Path) -> None:
    """Start time-outs longer than the window never fill it: counted in a row instead."""
    never_ready = _supervisor(tmp_path, FAKE_DELAY="3600")
    settings = RestartSettings(max_restarts=5, window_s=0.1, max_backoff_s=0.05,
                               max_failed_starts=3)
    keeper = await _kept_until_failed(never_ready, settings, startup_timeout_s=0.3)
    assert keeper.failed_starts == 3 and keeper.restarts == 2
    assert "3 starts in a row never became healthy" in (keeper.failure or "")
    registry = keeper.recorder.metrics.registry
    assert registry.get_sample_value("gateway_engine_failed") == 1
    assert registry.get_sample_value("gateway_engine_restarts_total",
                                     {"reason": "start_timeout"}) == 3


async def test_a_keeper_that_fails_itself_reports_it(tmp_path: Path) -> None:
    """A restart that cannot even start the engine (its log cannot be written) ends in a
    reported failure, not in a keeper that died without a word."""
    def break_the_log_folder() -> None:
        shutil.rmtree(tmp_path / "logs")
        (tmp_path / "logs").write_text("a file where the log folder was")

    crashing = _supervisor(tmp_path, FAKE_MODE="crash")
    settings = RestartSettings(max_restarts=5, max_backoff_s=0.05)
    keeper = await _kept_until_failed(crashing, settings, then=break_the_log_folder)
    assert "keeper failed" in (keeper.failure or "")
    assert keeper.recorder.metrics.registry.get_sample_value("gateway_engine_failed") == 1


def test_a_restart_window_shorter_than_a_start_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="window_s .* must be longer than"):
        _embedded(tmp_path, Path(sys.executable), window_s=30)
