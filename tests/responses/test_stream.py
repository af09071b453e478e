"""A Responses stream: the event sequence, text and function calls, errors, and storing."""

from __future__ import annotations

import asyncio
import json
from typing import Any, get_args

import httpx
import openai
import pytest
from openai.types.responses import ResponseStreamEvent

from gateway.app import create_app
from tests.conftest import BASE_MODEL, SettingsFactory
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value
from tests.responses.conftest import TICKET, TICKET_SCHEMA
from tests.servers import serving

pytestmark = pytest.mark.anyio

# The SDK's own event types, by their ``type``.
EVENTS = {cls.model_fields["type"].annotation.__args__[0]: cls
          for cls in get_args(get_args(ResponseStreamEvent)[0])}
ROUTE = {"type": "function", "name": "route_ticket", "parameters": TICKET_SCHEMA}


async def _events(client: httpx.AsyncClient, **body: Any) -> list[dict[str, Any]]:
    async with client.stream("POST", "/v1/responses",
                             json={"model": BASE_MODEL, "stream": True, **body}) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        raw = (await answer.aread()).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        kind, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        EVENTS[event["type"]].model_validate(event, strict=True)  # the SDK's own type
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


async def test_a_text_stream_has_the_whole_event_sequence(client: httpx.AsyncClient,
                                                          fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("one two three")
    events = await _events(client, input="count")
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert "".join(e["delta"] for e in events if e["type"].endswith("text.delta")) == (
        "one two three")
    done = events[-1]["response"]
    assert done["output"][0]["content"][0]["text"] == "one two three"
    assert done["usage"]["output_tokens"] == 3 and done["status"] == "completed"
    stored = await client.get(f"/v1/responses/{done['id']}")
    assert stored.json() == done


async def test_a_streamed_function_call(client: httpx.AsyncClient,
                                        fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("", finish_reason="tool_calls", tool_calls=[("route_ticket", TICKET)])
    events = await _events(client, input="I was charged twice.", tools=[ROUTE],
                           tool_choice="required")
    kinds = [e["type"] for e in events]
    assert kinds[2] == "response.output_item.added" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.done" in kinds
    (call,) = events[-1]["response"]["output"]
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == json.loads(TICKET)
    assert events[-1]["response"]["structured"]["valid"]


async def test_the_sdk_streams_and_parses(sdk: openai.AsyncOpenAI,
                                          fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("Hello there, friend.")
    async with sdk.responses.stream(model=BASE_MODEL, input="hi") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello there, friend."


async def test_length_ends_as_incomplete(client: httpx.AsyncClient,
                                         fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("a b c", finish_reason="length")
    events = await _events(client, input="x", max_output_tokens=3)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_a_stream_broken_by_the_engine_ends_failed(client: httpx.AsyncClient,
                                                         fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("partial answer", stream_end="error")
    events = await _events(client, input="x")
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"]
    assert (await client.get(f"/v1/responses/{failed['id']}")).status_code == 404


async def test_a_client_that_leaves_mid_stream_ends_the_engine_stream(
        make_settings: SettingsFactory, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("a long answer that goes on and on", hold_after=2)
    app = create_app(make_settings())
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        body = {"model": BASE_MODEL, "stream": True, "input": "long"}
        async with client.stream("POST", "/v1/responses", json=body) as answer:
            async for line in answer.aiter_lines():
                if "response.output_text.delta" in line:
                    break
        await asyncio.wait_for(fake_engine.stream_cancelled.wait(), timeout=30)
        samples = parse((await client.get("/metrics")).text)
        # The request's hold on its target ended with it: nothing left in flight.
        assert value(samples, "gateway_in_flight_requests", adapter="base") == 0
