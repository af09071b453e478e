"""A client that goes away mid-stream cancels the engine's request (over real HTTP)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import BASE_MODEL, SettingsFactory
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value
from tests.servers import serving

pytestmark = pytest.mark.anyio


async def test_disconnect_cancels_upstream(make_settings: SettingsFactory,
                                           fake_engine: FakeEngine) -> None:
    fake = fake_engine
    fake.chunk_delay = 0.05
    fake.enqueue(" ".join(f"w{i}" for i in range(200)))
    app = create_app(make_settings())
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        body = {"model": BASE_MODEL, "stream": True,
                "messages": [{"role": "user", "content": "long"}]}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            seen = 0
            async for line in response.aiter_lines():
                seen += line.startswith("data:")
                if seen == 3:
                    break
        for _ in range(100):
            if fake.streams_cancelled:
                break
            await asyncio.sleep(0.05)
        assert fake.streams_cancelled == 1
        # The request's hold on its target ended with it: nothing left in flight.
        samples = parse((await client.get("/metrics")).text)
        assert value(samples, "gateway_in_flight_requests", adapter="base") == 0
        assert value(samples, "gateway_requests_total", adapter="base", status="200") == 1
