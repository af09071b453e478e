"""Fair shares: per-key and total limits on requests in flight answer 429 at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.servers import serving

pytestmark = pytest.mark.anyio

KEYS = {"keys": [{"name": "alpha", "scope": "user", "key": "alpha-key"},
                 {"name": "beta", "scope": "user", "key": "beta-key"}]}
CHAT = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def client(make_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    limits = {"max_concurrent": 3, "max_concurrent_per_key": 2}
    app: FastAPI = create_app(make_settings(auth=KEYS, limits=limits))
    async for c in start(app):
        yield c


async def until(check: Callable[[], bool], guard: float = 10.0) -> None:
    async with asyncio.timeout(guard):
        while not check():
            await asyncio.sleep(0.01)


def _post(client: httpx.AsyncClient, key: str, **extra: Any) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(client.post(
        "/v1/chat/completions", json={**CHAT, **extra},
        headers={"authorization": f"Bearer {key}"}))


async def test_limits_per_key_and_in_all(client: httpx.AsyncClient,
                                         fake_engine: FakeEngine) -> None:
    gate = asyncio.Event()
    for _ in range(3):
        fake_engine.enqueue("held", gate=gate)
    held = [_post(client, "alpha-key"), _post(client, "alpha-key")]
    await until(lambda: len(fake_engine.requests) == 2)
    refused = await _post(client, "alpha-key")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "concurrency_limit"
    assert "alpha" in error["message"]
    held.append(_post(client, "beta-key"))  # another tenant still gets in
    await until(lambda: len(fake_engine.requests) == 3)
    full = await _post(client, "beta-key")
    assert full.status_code == 429 and "limit of 3" in full.json()["error"]["message"]
    assert len(fake_engine.requests) == 3  # nothing refused reached the engine
    gate.set()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200, 200]
    assert (await _post(client, "alpha-key")).status_code == 200  # places were given back


async def test_a_stream_holds_its_place_until_it_ends(make_settings: SettingsFactory,
                                                     fake_engine: FakeEngine) -> None:
    fake_engine.chunk_delay = 0.01
    for _ in range(2):  # streams far longer than the test: they end when the client leaves
        fake_engine.enqueue(" ".join(["word"] * 10_000))
    app = create_app(make_settings(auth=KEYS, limits={"max_concurrent_per_key": 2}))
    headers = {"authorization": "Bearer alpha-key"}
    body = {**CHAT, "stream": True}
    # Over real HTTP: the in-process transport would read each stream whole first.
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=headers) as http:
        await until(lambda: app.state.monitor.ready)
        async with http.stream("POST", "/v1/chat/completions", json=body) as first, \
                http.stream("POST", "/v1/chat/completions", json=body) as second:
            assert first.status_code == second.status_code == 200
            third = await http.post("/v1/chat/completions", json=CHAT)
            assert third.status_code == 429
        # Both clients left: their streams end and give their places back.
        statuses: list[int] = []

        async def admitted() -> bool:
            statuses.append((await http.post("/v1/chat/completions", json=CHAT)).status_code)
            return statuses[-1] == 200

        async with asyncio.timeout(10):
            while not await admitted():
                await asyncio.sleep(0.05)
        assert set(statuses) <= {200, 429}
