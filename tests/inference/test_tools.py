"""Tool calls through the gateway's HTTP API, against a fake engine that answers like vLLM's
tool parser: validated, classified, repaired, measured."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from tests.adapter_factory import write_adapter
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.anyio

TICKET_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "config" / "schemas" / "ticket.json").read_text())
ARGS = '{"category": "billing", "priority": "high", "escalate": true}'
PROSE = "Sure! This looks like a billing problem."
ROUTE = {"type": "function", "function": {"name": "route_ticket", "description": "Route it.",
                                          "parameters": TICKET_SCHEMA}}
LOOKUP = {"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}}}
NAMED = {"type": "function", "function": {"name": "route_ticket"}}


def _request(choice: Any = NAMED, tools: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"model": BASE_MODEL, "max_tokens": 100, "tools": tools or [ROUTE],
            "tool_choice": choice,
            "messages": [{"role": "user", "content": "I was charged twice."}], **extra}


def _gateway_call(arguments: dict[str, Any] | None = None) -> str:
    """What a constrained attempt answers: the call as JSON."""
    return json.dumps({"name": "route_ticket", "arguments": arguments or json.loads(ARGS)})


async def _deviations(client: httpx.AsyncClient, kind: str, schema: str = "inline") -> float:
    samples = parse((await client.get("/metrics")).text)
    return value(samples, "gateway_structured_deviations_total", schema=schema, kind=kind)


async def test_a_valid_call_passes_with_one_check(sdk: openai.AsyncOpenAI,
                                                  fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("", finish_reason="tool_calls", tool_calls=[("route_ticket", ARGS)])
    completion = await sdk.chat.completions.create(**_request())
    message = completion.choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "route_ticket"
    assert json.loads(message.tool_calls[0].function.arguments)["category"] == "billing"
    assert completion.choices[0].finish_reason == "tool_calls"
    assert (completion.model_extra or {})["structured"]["attempts"] == 1
    # The first attempt goes without the engine's grammar: the model's own call is measured.
    assert fake_engine.requests[0]["tool_choice"] == "auto"


async def test_no_call_is_repaired_by_the_gateways_constrained_call(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue(PROSE)
    fake_engine.enqueue(_gateway_call())
    response = await client.post("/v1/chat/completions", json=_request("required"))
    assert response.status_code == 200, response.text
    body = response.json()
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "route_ticket" and call["id"]
    assert json.loads(call["function"]["arguments"]) == json.loads(ARGS)
    assert body["choices"][0]["message"]["content"] is None
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["structured"]["strategies"] == ["constrained"]
    assert [d["kind"] for d in body["structured"]["deviations"]] == ["tool_call_missing"]
    retry = fake_engine.requests[1]
    assert retry["tool_choice"] == "none" and retry["tools"] == [ROUTE]
    assert retry["response_format"]["type"] == "structural_tag"
    assert response.headers["x-structured-deviations"] == "tool_call_missing"
    assert await _deviations(client, "tool_call_missing") == 1


async def test_a_call_left_in_content_is_recovered_by_extraction(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue(f'<tool_call>\n{{"name": "route_ticket", "arguments": {ARGS}}}\n'
                        "</tool_call>")
    response = await client.post("/v1/chat/completions", json=_request(
        "auto", retry={"strategies": ["extract", "constrained"]}))
    body = response.json()
    assert body["structured"]["valid"] and body["structured"]["strategies"] == ["extract"]
    assert body["structured"]["deviations"][0]["kind"] == "tool_call_in_content"
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "route_ticket"
    assert len(fake_engine.requests) == 1  # no second engine call


async def test_broken_arguments_are_reasked_with_tool_results(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue("", tool_calls=[("route_ticket", '{"category": "billing"}')],
                        finish_reason="tool_calls")
    fake_engine.enqueue("", tool_calls=[("route_ticket", ARGS)], finish_reason="tool_calls")
    response = await client.post("/v1/chat/completions",
                                 json=_request(retry={"strategies": ["reask"]}))
    body = response.json()
    assert body["structured"]["deviations"][0]["kind"] == "tool_arguments_schema_violation"
    assert body["structured"]["deviations"][0]["keyword"] == "required"
    messages = fake_engine.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "route_ticket"
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]
    assert "priority" in messages[2]["content"]
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == ARGS


async def test_a_required_call_that_never_comes_is_422(sdk: openai.AsyncOpenAI,
                                                       fake_engine: FakeEngine) -> None:
    for _ in range(3):
        fake_engine.enqueue(PROSE)
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        await sdk.chat.completions.create(**_request("required"),
                                          extra_body={"retry": {"strategies": ["reask"]}})
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["param"] == "tools"
    assert [d["kind"] for d in error["structured"]["deviations"]] == ["tool_call_missing"] * 3


async def test_prose_is_a_valid_answer_under_auto_and_none(client: httpx.AsyncClient,
                                                           fake_engine: FakeEngine) -> None:
    for choice in ("auto", "none"):
        fake_engine.enqueue(PROSE)
        response = await client.post("/v1/chat/completions", json=_request(choice))
        body = response.json()
        assert body["choices"][0]["message"]["content"] == PROSE
        assert body["structured"]["valid"] and body["structured"]["attempts"] == 1


async def test_an_unknown_function_is_classified(client: httpx.AsyncClient,
                                                 fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("", tool_calls=[("delete_everything", "{}")], finish_reason="tool_calls")
    fake_engine.enqueue(_gateway_call())
    response = await client.post("/v1/chat/completions", json=_request("auto"))
    assert response.json()["structured"]["deviations"][0]["kind"] == "tool_unknown"
    assert await _deviations(client, "tool_unknown") == 1


async def test_parallel_calls_are_checked_in_one_attempt(client: httpx.AsyncClient,
                                                         fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("", tool_calls=[("route_ticket", ARGS), ("lookup", '{"id": 7}')],
                        finish_reason="tool_calls")
    response = await client.post("/v1/chat/completions",
                                 json=_request("auto", tools=[ROUTE, LOOKUP]))
    calls = response.json()["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["route_ticket", "lookup"]
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_structured_checks_total", schema="inline") == 1


async def test_a_stream_replays_the_valid_call(sdk: openai.AsyncOpenAI,
                                               fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(PROSE)
    fake_engine.enqueue(_gateway_call())
    stream = await sdk.chat.completions.create(**_request(), stream=True)
    names, arguments, finish = [], "", None
    async for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert names == ["route_ticket"] and json.loads(arguments) == json.loads(ARGS)
    assert finish == "tool_calls"


async def test_n_above_one_passes_through_unchecked(client: httpx.AsyncClient,
                                                    fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(PROSE)
    response = await client.post("/v1/chat/completions", json=_request("auto", n=2))
    assert response.status_code == 200
    assert len(response.json()["choices"]) == 2 and "structured" not in response.json()


async def test_hostile_parameters_are_400_naming_the_tool(client: httpx.AsyncClient,
                                                          fake_engine: FakeEngine) -> None:
    hostile = {"type": "function", "function": {"name": "evil", "parameters": {
        "type": "object", "properties": {"a": {"$ref": "http://169.254.169.254/x"}}}}}
    response = await client.post("/v1/chat/completions", json=_request(
        "auto", tools=[ROUTE, hostile]))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "tools[1].function.parameters" and "evil" in error["message"]
    assert fake_engine.requests == []


async def test_a_registered_schema_name_labels_the_metrics(client: httpx.AsyncClient,
                                                           fake_engine: FakeEngine) -> None:
    ticket = {"type": "function", "function": {"name": "ticket", "parameters": TICKET_SCHEMA}}
    fake_engine.enqueue("", tool_calls=[("ticket", '{"category": "billing"}')],
                        finish_reason="tool_calls")
    fake_engine.enqueue(json.dumps({"name": "ticket", "arguments": json.loads(ARGS)}))
    response = await client.post("/v1/chat/completions", json=_request(
        {"type": "function", "function": {"name": "ticket"}}, tools=[ticket]))
    assert response.json()["structured"]["valid"]
    assert await _deviations(client, "tool_arguments_schema_violation", "ticket") == 1


@pytest.fixture
def adapter_app(make_settings: SettingsFactory, store: Path) -> FastAPI:
    write_adapter(store / "router", name="router", num_layers=2,
                  serving={"response_schema": "ticket", "validate_by_default": True,
                           "system_prompt": "Route the ticket."})
    return create_app(make_settings())


@pytest.fixture
async def adapter_client(adapter_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in start(adapter_app):
        yield c


async def test_an_adapters_default_schema_does_not_apply_to_tool_requests(
    adapter_client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue(PROSE)
    response = await adapter_client.post("/v1/chat/completions",
                                         json=_request("auto", model="router"))
    body = response.json()
    assert body["choices"][0]["message"]["content"] == PROSE and body["structured"]["valid"]
    # Its system prompt still does.
    assert fake_engine.requests[0]["messages"][0] == {"role": "system",
                                                      "content": "Route the ticket."}


async def test_a_streamed_call_that_goes_wrong_is_stopped_early(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    """Fail fast reads the first attempt's calls as they stream: a function other than the
    named one is stopped at its name, and the repair starts at once."""
    fake_engine.enqueue("", tool_calls=[("lookup", '{"id": 7}')], finish_reason="tool_calls")
    fake_engine.enqueue(_gateway_call())
    response = await client.post("/v1/chat/completions",
                                 json=_request(tools=[ROUTE, LOOKUP]))
    body = response.json()
    (deviation,) = body["structured"]["deviations"]
    assert deviation["kind"] == "tool_unknown" and deviation["stopped_early"] is True
    assert fake_engine.requests[0]["stream"] is True
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "route_ticket"
