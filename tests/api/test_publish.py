"""Publishing to a resolver store, and gateway processes that agree before a version leaves.

The fake engine resolves adapters from the shared folder as vLLM's filesystem resolver
does (by name on first request, only when the config names its --model).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from tests.adapter_factory import expected_digest
from tests.api.test_adapters import adapter, chat, engine_id, eventually, load, unloads
from tests.conftest import SettingsFactory, start
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio

ENGINE_MODEL_ARG = "/models/SmolLM2-135M-Instruct"


@pytest.fixture
def resolver(tmp_path: Path, fake_engine: FakeEngine) -> Path:
    folder = tmp_path / "resolver"
    fake_engine.resolver_dir, fake_engine.resolver_base = folder, ENGINE_MODEL_ARG
    return folder


@pytest.fixture
def settings(make_settings: SettingsFactory, tmp_path: Path, resolver: Path) -> Settings:
    return make_settings(adapters={
        "staging_dir": str(tmp_path / "staging"), "publish": "resolver",
        "resolver": {"dir": str(resolver), "base_model": ENGINE_MODEL_ARG}})


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in start(create_app(settings)):
        yield client


async def version_state(client: httpx.AsyncClient, name: str, label: str) -> str | None:
    listed = (await client.get(f"/v1/adapters/{name}")).json()
    return next((v["state"] for v in listed["versions"] if v["version"] == label), None)


async def test_a_version_is_published_once_and_resolved_by_the_engine(
        client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path, resolver: Path) -> None:
    folder = adapter(store, "alpha")
    assert (await load(client, "alpha")).status_code == 201
    published = resolver / engine_id(folder, "alpha")
    config = json.loads((published / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == ENGINE_MODEL_ARG
    record = json.loads((published / "published.json").read_text())
    assert record["store_digest"] == expected_digest(folder)
    assert record["published_digest"] != record["store_digest"]  # the config was rewritten
    # Nothing was broadcast: the engine resolved it from the folder (the load's probe).
    assert [kind for kind, _ in fake_engine.lora_calls] == ["resolved"]
    assert (await chat(client, "alpha")).status_code == 200
    assert fake_engine.requests[-1]["model"] == published.name
    # The version keeps the store's digest, not the published copy's.
    listed = (await client.get("/v1/adapters/alpha")).json()
    assert listed["versions"][0]["digest"] == expected_digest(folder)


async def test_a_hot_swap_publishes_the_new_version_and_withdraws_the_old(
        client: httpx.AsyncClient, store: Path, resolver: Path) -> None:
    v1 = adapter(store, "alpha")
    v2 = adapter(store, "alpha", folder="alpha-2", version="2", seed=1)
    await load(client, "alpha")
    assert (await load(client, "alpha-2", replace=True)).status_code == 201
    await eventually(lambda: not (resolver / engine_id(v1, "alpha")).exists())
    assert (resolver / engine_id(v2, "alpha")).is_dir()
    assert (await chat(client, "alpha")).status_code == 200
    await client.delete("/v1/adapters/alpha")
    await eventually(lambda: not (resolver / engine_id(v2, "alpha")).exists())
    assert list(resolver.iterdir()) == []


async def test_an_adapter_the_engines_cannot_resolve_fails_its_load_with_the_fix(
        client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path, resolver: Path) -> None:
    fake_engine.resolver_base = "/another/model"  # the engines run another --model
    folder = adapter(store, "alpha")
    response = await load(client, "alpha")
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "VLLM_LORA_RESOLVER_CACHE_DIR" in message and ENGINE_MODEL_ARG in message
    assert not (resolver / engine_id(folder, "alpha")).exists()


async def test_a_remote_resolver_without_the_engines_model_argument_is_refused(
        make_settings: SettingsFactory, resolver: Path) -> None:
    settings = make_settings(adapters={"publish": "resolver", "resolver": {"dir": str(resolver)}})
    with pytest.raises(ValueError, match="resolver.base_model"):
        create_app(settings)


# -- several gateway processes ------------------------------------------------------------


@pytest.mark.parametrize("publish", ["runtime", "resolver"])
async def test_a_version_leaves_only_once_no_gateway_uses_it(
        make_settings: SettingsFactory, fake_engine: FakeEngine, tmp_path: Path, store: Path,
        resolver: Path, publish: str) -> None:
    """Two gateways on one store and one engine: the first to swap waits for the second."""
    shared = {"staging_dir": str(tmp_path / "staging"), "publish": publish,
              "resolver": {"dir": str(resolver), "base_model": ENGINE_MODEL_ARG},
              "claims_refresh_s": 2.0}
    v1 = adapter(store, "alpha")
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(gateway(make_settings(adapters=shared)))
        second = await stack.enter_async_context(gateway(make_settings(adapters=shared)))
        for each in (first, second):
            assert (await load(each, "alpha")).status_code in (200, 201)
        old = engine_id(v1, "alpha")
        v2 = adapter(store, "alpha", folder="alpha-2", version="2", seed=1)
        assert (await load(first, "alpha-2", replace=True)).status_code == 201
        # The first has drained version 1 (closed to its requests); the second still
        # serves it, so it stays in the engine and in the store.
        while (state := await version_state(first, "alpha", "1")) in ("ready", "draining"):
            await asyncio.sleep(0.02)
        assert state == "unloaded"  # held: the second gateway still claims it
        for _ in range(3):  # the second keeps serving it meanwhile
            assert (await chat(second, "alpha")).status_code == 200
            assert fake_engine.requests[-1]["model"] == old
        assert old not in unloads(fake_engine)
        assert (publish == "runtime") or (resolver / old).is_dir()
        # Once the second has moved on too, version 1 leaves the engine (or the store).
        assert (await load(second, "alpha-2", replace=True)).status_code == 201
        if publish == "runtime":
            await eventually(lambda: old in unloads(fake_engine))
        else:
            await eventually(lambda: not (resolver / old).exists())
        assert (await chat(first, "alpha")).status_code == 200
        assert fake_engine.requests[-1]["model"] == engine_id(v2, "alpha")
