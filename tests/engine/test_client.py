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


# -- per-server health ---------------------------------------------------------------------


async def test_a_server_failing_its_health_check_is_ejected_then_readmitted() -> None:
    sick, well = FakeEngine(), FakeEngine()
    async with serving(sick.app) as sick_url, serving(well.app) as well_url:
        client = EngineClient([sick_url, well_url], backoff_s=0.0)
        sick.healthy = False
        assert await client.healthy()
        assert [s.admitted for s in client.servers] == [False, True]
        assert client.servers[0].as_dict()["reason"] == "it does not answer its health check"
        for _ in range(4):
            await client.post("/v1/chat/completions", BODY)
        assert (len(sick.requests), len(well.requests)) == (0, 4)
        (load,) = await client.broadcast("/v1/load_lora_adapter", {"lora_name": "a",
                                                                   "lora_path": "/x"})
        assert load.status == 200 and not sick.lora_calls  # it gets the adapters once back
        sick.healthy = True
        assert await client.healthy()
        assert all(s.admitted for s in client.servers) and client.readmitted.is_set()
        for _ in range(4):
            await client.post("/v1/chat/completions", BODY)
        assert (len(sick.requests), len(well.requests)) == (2, 6)
        await client.aclose()


async def test_an_ejected_server_waits_out_its_backoff_even_when_healthy() -> None:
    well, flapping = FakeEngine(), FakeEngine()
    async with serving(well.app) as well_url, serving(flapping.app) as flapping_url:
        client = EngineClient([well_url, flapping_url], backoff_s=3600, max_backoff_s=7200)
        flapping.healthy = False
        assert await client.healthy()
        flapping.healthy = True
        assert await client.healthy()  # it answers now, but its backoff has not passed
        assert [s.admitted for s in client.servers] == [True, False]
        assert client.servers[1].as_dict()["readmit_in_s"] > 3000
        await client.aclose()


async def test_errors_in_a_row_eject_a_server_and_a_refusal_ejects_at_once() -> None:
    failing, well = FakeEngine(), FakeEngine()
    for _ in range(3):
        failing.enqueue("boom", status=500)
    async with serving(failing.app) as failing_url, serving(well.app) as well_url:
        dead = f"http://127.0.0.1:{free_port()}"
        client = EngineClient([failing_url, well_url, dead], eject_after=3, backoff_s=3600)
        errors = 0
        for _ in range(12):
            try:
                await client.post("/v1/chat/completions", BODY)
            except UpstreamError:
                errors += 1
        assert errors == 3  # the third 500 in a row ejected it
        assert [s.admitted for s in client.servers] == [False, True, False]
        assert client.servers[2].reason == "it refused the connection"
        assert len(failing.requests) == 3 and len(well.requests) == 9
        await client.aclose()


async def test_with_every_server_ejected_requests_still_try_them() -> None:
    fake = FakeEngine()
    async with serving(fake.app) as url:
        client = EngineClient([url], backoff_s=3600)
        fake.healthy = False
        assert not await client.healthy()
        assert (await client.post("/v1/chat/completions", BODY))["choices"]
        with pytest.raises(EngineUnavailable, match="no engine server is admitted"):
            await client.broadcast("/v1/load_lora_adapter", {"lora_name": "a", "lora_path": "/x"})
        await client.aclose()
