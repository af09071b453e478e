"""What the gateway exposes: API docs follow the keys; start-up refuses what would fail later."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from tests.conftest import SettingsFactory, start
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio

KEYS = {"keys": [{"name": "ops", "scope": "admin", "key": "admin-secret"}]}


@pytest.mark.parametrize(("auth", "docs", "served"), [
    ({}, "auto", True), (KEYS, "auto", False), (KEYS, "on", True), ({}, "off", False),
])
async def test_api_docs_follow_the_keys(make_settings: SettingsFactory, auth: dict[str, Any],
                                        docs: str, served: bool) -> None:
    app = create_app(make_settings(auth=auth, server={"api_docs": docs}))
    transport = httpx.ASGITransport(app=app)  # no lifespan: the docs need no engine
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert ((await client.get(path)).status_code == 200) is served, path


async def test_a_remote_engine_needs_the_base_model_config(make_settings: SettingsFactory,
                                                     tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base_model_config is not set"):
        create_app(make_settings(adapters={"base_model_config": None}))
    with pytest.raises(ValueError, match="does not exist"):
        create_app(make_settings(adapters={"base_model_config": str(tmp_path / "none.json")}))


def test_the_engine_key_variable_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.model_validate({"engine": {"api_key_env": "VLLM_KEY_FOR_TESTS"}})
    monkeypatch.delenv("VLLM_KEY_FOR_TESTS", raising=False)
    with pytest.raises(ValueError, match="VLLM_KEY_FOR_TESTS"):
        settings.engine_api_key()
    monkeypatch.setenv("VLLM_KEY_FOR_TESTS", "k")
    assert settings.engine_api_key() == "k"


@pytest.mark.parametrize(("served", "logged"), [(2048, False), (131072, True)])
async def test_the_engine_context_is_checked_at_start_up(
    make_settings: SettingsFactory, fake_engine: FakeEngine, caplog: pytest.LogCaptureFixture,
    served: int, logged: bool,
) -> None:
    fake_engine.max_model_len = served
    app = create_app(make_settings(engine={"max_model_len": 2048}))
    with caplog.at_level(logging.ERROR, "gateway.wiring.store"):
        async for _ in start(app):  # the store loads after the check
            pass
    assert ("--max-model-len 2048" in caplog.text) is logged
