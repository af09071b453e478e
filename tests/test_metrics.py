"""Metrics move exactly as the traffic sent; label values stay bounded."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import BASE_MODEL
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, series, value

pytestmark = pytest.mark.anyio


def _chat(model: str = BASE_MODEL, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_requests_latency_and_tokens_are_counted(client: httpx.AsyncClient,
                                                       fake_engine: FakeEngine) -> None:
    for _ in range(7):
        fake_engine.enqueue("a b c", prompt_tokens=5)
    for _ in range(7):
        assert (await client.post("/v1/chat/completions", json=_chat())).status_code == 200
    for _ in range(2):
        assert (await client.post("/v1/chat/completions", json=_chat(n=999))).status_code == 400
    assert (await client.post("/v1/chat/completions", json={"model": 1})).status_code == 400
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_requests_total", adapter="base", endpoint="chat",
                 status="200") == 7
    assert value(samples, "gateway_requests_total", endpoint="chat", status="400") == 3
    assert value(samples, "gateway_request_duration_seconds_count", adapter="base") == 7
    assert value(samples, "gateway_upstream_duration_seconds_count", adapter="base") == 7
    assert value(samples, "gateway_overhead_seconds_count", endpoint="chat") == 10
    assert value(samples, "gateway_prompt_tokens_total", adapter="base") == 35
    assert value(samples, "gateway_completion_tokens_total", adapter="base") == 21
    assert value(samples, "gateway_engine_ready") == 1


async def test_streams_record_first_token_and_gaps(client: httpx.AsyncClient,
                                                   fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("one two three four")
    response = await client.post("/v1/chat/completions", json=_chat(stream=True))
    assert response.status_code == 200
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_time_to_first_token_seconds_count", adapter="base") == 1
    assert value(samples, "gateway_inter_token_latency_seconds_count", adapter="base") == 3
    assert value(samples, "gateway_completion_tokens_total", adapter="base") == 4


async def test_unknown_models_fold_into_other(client: httpx.AsyncClient) -> None:
    for i in range(1000):
        response = await client.post("/v1/chat/completions", json=_chat(model=f"m-{i}"))
        assert response.status_code == 404
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_requests_total", adapter="other", status="404") == 1000
    assert series(samples, "gateway_requests_total") == 1
    assert not any(("adapter", "m-7") in labels for _, labels in samples)


async def test_in_flight_counts_running_requests(client: httpx.AsyncClient,
                                                 fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("slow", delay=0.5)
    running = asyncio.create_task(client.post("/v1/chat/completions", json=_chat()))
    await asyncio.sleep(0.2)
    during = parse((await client.get("/metrics")).text)
    assert value(during, "gateway_in_flight_requests", adapter="base") == 1
    assert (await running).status_code == 200
    after = parse((await client.get("/metrics")).text)
    assert value(after, "gateway_in_flight_requests", adapter="base") == 0
