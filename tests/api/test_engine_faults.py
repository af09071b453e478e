"""Engine faults reach the client with their exact status, type and headers (real HTTP).

The gateway is served by uvicorn, the fake engine misbehaves as told, and every
request goes over loopback sockets, as in production.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import BASE_MODEL, SettingsFactory
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value
from tests.servers import serving

pytestmark = pytest.mark.anyio

CHAT = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}]}
TICKET = {"type": "object", "properties": {"category": {"enum": ["billing", "other"]}},
          "required": ["category"]}


@pytest.fixture
async def gateway(make_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings())
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        await until(lambda: app.state.monitor.ready)
        yield client


async def until(check: Callable[[], bool], guard: float = 10.0) -> None:
    """Waits for ``check`` to hold; ``guard`` only stops a hang."""
    async with asyncio.timeout(guard):
        while not check():
            await asyncio.sleep(0.01)


async def requests_with_status(client: httpx.AsyncClient, status: str) -> float:
    samples = parse((await client.get("/metrics")).text)
    return value(samples, "gateway_requests_total", status=status)


@pytest.mark.parametrize(("sent", "expected"), [({"retry-after": "7"}, "7"), ({}, "5")])
async def test_engine_503_stays_503_with_retry_after(
    gateway: httpx.AsyncClient, fake_engine: FakeEngine, sent: dict[str, str], expected: str
) -> None:
    fake_engine.enqueue("busy", status=503, headers=sent)
    response = await gateway.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 503
    assert response.headers["retry-after"] == expected
    assert response.json()["error"]["code"] == "engine_unavailable"


async def test_engine_429_stays_429_with_its_type_and_retry_after(
    gateway: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue("slow down", status=429, headers={"retry-after": "3"})
    response = await gateway.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"


async def test_engine_500_is_a_502(gateway: httpx.AsyncClient, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("boom", status=500)
    response = await gateway.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "engine_error"


async def _events(client: httpx.AsyncClient) -> list[str]:
    body = {**CHAT, "stream": True}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        return [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("end", ["cut", "error"])
async def test_a_broken_stream_ends_with_an_error_event_and_counts_as_an_error(
    gateway: httpx.AsyncClient, fake_engine: FakeEngine, end: str
) -> None:
    fake_engine.enqueue("one two three", stream_end=end)
    events = await _events(gateway)
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["code"] in ("engine_cut_off", "engine_error")
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]] == [
        "one", " two", " three"]
    assert await requests_with_status(gateway, "502") == 1
    assert await requests_with_status(gateway, "200") == 0


async def test_a_clean_stream_still_ends_with_done(
    gateway: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue("one two")
    assert (await _events(gateway))[-1] == "[DONE]"
    assert await requests_with_status(gateway, "200") == 1


async def _leave_once_engine_has(client: httpx.AsyncClient, fake: FakeEngine, requests: int,
                                 body: dict[str, Any]) -> None:
    call = asyncio.create_task(client.post("/v1/chat/completions", json=body))
    await until(lambda: len(fake.requests) >= requests)
    call.cancel()  # httpx drops the connection: the client is gone
    await asyncio.gather(call, return_exceptions=True)


async def test_a_departed_client_cancels_the_engine_call(
    gateway: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue("slow", delay=60)
    await _leave_once_engine_has(gateway, fake_engine, 1, CHAT)
    async with asyncio.timeout(10):  # a hang guard; the time it takes is measured apart
        await fake_engine.request_cancelled.wait()
    await until(lambda: fake_engine.requests_cancelled == 1)
    samples = parse((await gateway.get("/metrics")).text)
    assert value(samples, "gateway_in_flight_requests", adapter="base") == 0
    assert value(samples, "gateway_requests_total", status="499") == 1


async def test_a_departed_client_stops_the_structured_retries(
    gateway: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue("Sure! Here is your ticket.")  # the first attempt deviates
    fake_engine.enqueue('{"category": "billing"}', delay=60)  # the retry is slow
    fake_engine.enqueue('{"category": "billing"}')
    body = {**CHAT, "response_format": {"type": "json_schema",
                                        "json_schema": {"name": "t", "schema": TICKET}},
            "retry": {"max_attempts": 3, "strategies": ["reask", "resample"]}}
    await _leave_once_engine_has(gateway, fake_engine, 2, body)
    async with asyncio.timeout(10):
        await fake_engine.request_cancelled.wait()
    samples = parse((await gateway.get("/metrics")).text)
    assert value(samples, "gateway_in_flight_requests", adapter="base") == 0
    assert len(fake_engine.requests) == 2  # no third attempt for a client that left
