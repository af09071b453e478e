from __future__ import annotations

import pytest

from gateway.engine.client import EngineClient
from gateway.errors import EngineTimeout, EngineUnavailable, UpstreamClientError, UpstreamError
from tests.fakes.engine import FakeEngine
from tests.servers import free_port, serving

pytestmark = pytest.mark.anyio

BODY = {"model": "base-model", "messages": [{"role": "user", "content": "hi"}]}


async def test_refused_connection_is_unavailable() -> None:
    client = EngineClient([f"http://127.0.0.1:{free_port()}"], connect_timeout=1)
    with pytest.raises(EngineUnavailable, match="no engine server is reachable"):
        await client.post("/v1/chat/completions", BODY)
    assert not await client.healthy()
    await client.aclose()


async def test_slow_engine_is_a_timeout() -> None:
    fake = FakeEngine()
    fake.enqueue("late", delay=0.6)
    async with serving(fake.app) as url:
        client = EngineClient([url], read_timeout=0.2)
        with pytest.raises(EngineTimeout):
            await client.post("/v1/chat/completions", BODY)
        await client.aclose()


async def test_server_error_and_client_error_are_told_apart() -> None:
    fake = FakeEngine()
    fake.enqueue("boom", status=500)
    fake.enqueue("context too long", status=400)
    async with serving(fake.app) as url:
        client = EngineClient([url])
        with pytest.raises(UpstreamError, match="boom"):
            await client.post("/v1/chat/completions", BODY)
        with pytest.raises(UpstreamClientError) as caught:
            await client.post("/v1/chat/completions", BODY)
        assert caught.value.http_status == 400
        await client.aclose()


async def test_a_dead_server_is_skipped() -> None:
    fake = FakeEngine()
    async with serving(fake.app) as url:
        client = EngineClient([f"http://127.0.0.1:{free_port()}", url])
        for _ in range(3):
            answer = await client.post("/v1/chat/completions", BODY)
            assert answer["choices"][0]["message"]["content"] == fake.default_content
        assert len(fake.requests) == 3
        await client.aclose()


async def test_the_engine_key_is_sent_with_every_request() -> None:
    fake = FakeEngine(api_key="engine-secret")
    async with serving(fake.app) as url:
        keyless = EngineClient([url])
        with pytest.raises(UpstreamClientError) as refused:
            await keyless.post("/v1/chat/completions", BODY)
        assert refused.value.http_status == 401
        keyed = EngineClient([url], api_key="engine-secret")
        assert (await keyed.post("/v1/chat/completions", BODY))["choices"]
        (load,) = await keyed.broadcast("/v1/load_lora_adapter", {"lora_name": "a",
                                                                  "lora_path": "/x"})
        assert load.status == 200
        await keyless.aclose()
        await keyed.aclose()
