"""Fail fast: a structured first attempt is streamed and stopped once it cannot be valid."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import httpx2
import openai
import pytest

from gateway.app import create_app
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.anyio

TICKET = '{"category": "billing", "priority": "high", "escalate": true}'
TICKET_FORMAT = {"type": "json_schema", "json_schema": {"name": "ticket"}}
LONG_PROSE = "Here is what I think about this ticket. " + "It is about money. " * 60


async def _engine_stopped(fake_engine: FakeEngine) -> None:
    """The engine's stream was left while it was still generating."""
    await asyncio.wait_for(fake_engine.stream_cancelled.wait(), timeout=30)
    assert fake_engine.streams_cancelled == 1


def _ticket_request(**extra: Any) -> dict[str, Any]:
    return {"model": BASE_MODEL, "response_format": TICKET_FORMAT, "max_tokens": 400,
            "messages": [{"role": "user", "content": "I was charged twice."}], **extra}


async def test_prose_is_stopped_at_its_first_token_and_the_retry_answers(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue(LONG_PROSE, hold_after=3)
    fake_engine.enqueue(TICKET)
    response = await client.post("/v1/chat/completions", json=_ticket_request())
    assert response.status_code == 200, response.text
    report = response.json()["structured"]
    assert report["valid"] and report["attempts"] == 2
    assert report["deviations"] == [{
        "attempt": 1, "kind": "not_json", "keyword": None, "stopped_early": True,
        "messages": ["the answer contains no JSON document"]}]
    first = fake_engine.requests[0]
    assert first["stream"] is True and first["stream_options"]["continuous_usage_stats"]
    await _engine_stopped(fake_engine)
    assert response.json()["usage"]["completion_tokens"] == 1 + 6
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_structured_stopped_early_total", schema="ticket") == 1
    assert value(samples, "gateway_structured_deviations_total", kind="not_json") == 1
    assert value(samples, "gateway_completion_tokens_total", adapter="base") == 1 + 6


async def test_an_enum_no_member_starts_with_is_a_schema_violation_at_once(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue('{"category": "payments", "priority": "high", "escalate": true}',
                        hold_after=3)
    fake_engine.enqueue(TICKET)
    response = await client.post("/v1/chat/completions", json=_ticket_request())
    deviation = response.json()["structured"]["deviations"][0]
    assert (deviation["kind"], deviation["keyword"]) == ("schema_violation", "enum")
    assert deviation["stopped_early"] is True
    assert "'payments' is not one of" in deviation["messages"][0]
    await _engine_stopped(fake_engine)


async def test_a_valid_answer_is_returned_as_without_fail_fast(
    make_settings: SettingsFactory, fake_engine: FakeEngine
) -> None:
    bodies = []
    for fail_fast in (True, False):
        app = create_app(make_settings(structured={"fail_fast": fail_fast}))
        async for _ in start(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport) as http:
                sdk = openai.AsyncOpenAI(base_url="http://gateway/v1", api_key="none",
                                         http_client=http)
                fake_engine.enqueue(TICKET, prompt_tokens=31, completion_tokens=17)
                completion = await sdk.chat.completions.create(**_ticket_request())
            bodies.append(completion.model_dump(exclude={"id", "created"}))
    streamed, whole = bodies
    assert fake_engine.requests[0].get("stream") is True
    assert "stream" not in fake_engine.requests[1]
    assert streamed == whole
    assert streamed["usage"]["completion_tokens"] == 17
    assert json.loads(streamed["choices"][0]["message"]["content"]) == json.loads(TICKET)


@pytest.mark.parametrize("extra", [
    {"retry": {"max_attempts": 1}},
    {"retry": {"strategies": ["extract"]}},
    {"logprobs": True},
])
async def test_without_a_retry_to_make_the_answer_is_read_whole(
    client: httpx.AsyncClient, fake_engine: FakeEngine, extra: dict[str, Any]
) -> None:
    fake_engine.enqueue(LONG_PROSE)
    fake_engine.enqueue(TICKET)
    response = await client.post("/v1/chat/completions", json=_ticket_request(**extra))
    assert "stream" not in fake_engine.requests[0]
    deviation = response.json()["structured"]["deviations"][0] if response.status_code == 200 \
        else None
    assert deviation is None or "stopped_early" not in deviation


async def test_with_extract_in_the_policy_prose_is_read_until_its_object(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue(f"Sure! Here it is: {TICKET} " + "Anything else? " * 50,
                        hold_after=14)
    body = _ticket_request(retry={"strategies": ["extract", "constrained"]})
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    report = response.json()["structured"]
    assert report["strategies"] == ["extract"] and report["attempts"] == 1
    assert report["deviations"][0]["kind"] == "extra_text"
    assert report["deviations"][0]["stopped_early"] is True
    await _engine_stopped(fake_engine)
    assert json.loads(response.json()["choices"][0]["message"]["content"]) == json.loads(TICKET)


async def test_an_engine_error_in_the_watched_stream_is_the_clients_error(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue('{"category": "billing",', stream_end="error")
    response = await client.post("/v1/chat/completions", json=_ticket_request())
    assert response.status_code == 502
    assert "KV cache exhausted" in response.json()["error"]["message"]
