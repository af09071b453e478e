"""Shared fixtures: the gateway in process, in front of a fake engine speaking vLLM's protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.config import Settings
from gateway.wiring.store import BUNDLED_BASE_CONFIG
from tests.fakes.engine import FakeEngine
from tests.fakes.grammar import REFERENCE as STAND_IN_COMPILER
from tests.servers import serving

BASE_MODEL = "base-model"

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine(base_model=BASE_MODEL)


@pytest.fixture
async def engine_url(fake_engine: FakeEngine) -> AsyncIterator[str]:
    """The fake engine, served over real HTTP on loopback."""
    async with serving(fake_engine.app) as url:
        yield url


@pytest.fixture
def make_settings(tmp_path: Any, engine_url: str) -> SettingsFactory:
    """Settings for a gateway in front of the fake engine; keyword sections override."""

    def build(**sections: Any) -> Settings:
        engine = {"mode": "remote", "urls": [engine_url], "model": BASE_MODEL,
                  "health_interval_s": 0.2, **sections.pop("engine", {})}
        adapters = {"roots": [str(tmp_path / "adapters")], "watch": False,
                    "base_model_config": str(BUNDLED_BASE_CONFIG),
                    "rollouts_file": str(tmp_path / "rollouts.json"),
                    "claims_dir": str(tmp_path / "claims"),
                    **sections.pop("adapters", {})}
        responses = {"store_file": str(tmp_path / "responses.sqlite3"),
                     **sections.pop("responses", {})}
        structured = sections.pop("structured", {})
        # The compile check runs a stand-in compiler in its worker: a fake engine has no
        # tokenizer, and the stand-in can be made to hang or balloon on cue.
        # Started on the first grammar: most tests send none.
        structured = {**structured, "grammar_check": {
            "compiler": STAND_IN_COMPILER, "start_early": False,
            **structured.get("grammar_check", {})}}
        return Settings.model_validate({"engine": engine, "adapters": adapters,
                                        "responses": responses, "structured": structured,
                                        **sections})

    return build


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The adapter root make_settings configures, created."""
    root = tmp_path / "adapters"
    root.mkdir()
    return root


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


async def start(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Runs the app's lifespan; yields a client once the engine and the adapter store are up."""
    async with app.router.lifespan_context(app):
        await app.state.monitor.check()
        await asyncio.wait_for(app.state.adapters.store_loaded.wait(), timeout=30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in start(app):
        yield c


@pytest.fixture
async def sdk(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK, talking to the in-process gateway (``client`` runs its lifespan)."""
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield openai.AsyncOpenAI(api_key="unused", base_url="http://gateway/v1",
                                 http_client=http, max_retries=0)
