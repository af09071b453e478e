"""Creating responses: each field and item mapped onto the chat core, and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from gateway.app import create_app
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value
from tests.responses.conftest import TICKET, TICKET_SCHEMA

pytestmark = pytest.mark.anyio


class Ticket(BaseModel):
    category: Literal["billing", "technical", "account", "other"]
    priority: Literal["low", "medium", "high"]
    escalate: bool


ROUTE = {"type": "function", "name": "route_ticket", "description": "Route it.",
         "parameters": TICKET_SCHEMA}


async def test_text_in_text_out(sdk: openai.AsyncOpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("Paris is the capital of France.")
    response = await sdk.responses.create(
        model=BASE_MODEL, input="Capital of France?", instructions="Answer in one sentence.",
        max_output_tokens=20, temperature=0, top_p=0.5, metadata={"team": "geo"})
    assert response.output_text == "Paris is the capital of France."
    assert response.status == "completed" and response.model == BASE_MODEL
    assert response.id.startswith("resp_") and response.metadata == {"team": "geo"}
    assert response.usage is not None and response.usage.output_tokens == 6
    assert response.usage.input_tokens == 10 and response.usage.total_tokens == 16
    sent = fake_engine.requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "Answer in one sentence."},
                                {"role": "user", "content": "Capital of France?"}]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (20, 0, 0.5)
    assert "metadata" not in sent and "input" not in sent and "store" not in sent


async def test_items_become_chat_messages(sdk: openai.AsyncOpenAI,
                                          fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("It is 21 degrees in Paris.")
    await sdk.responses.create(model=BASE_MODEL, input=[
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "Weather in "},
                     {"type": "input_text", "text": "Paris?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "call_2", "name": "weather",
         "arguments": '{"city": "Lyon"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "21 C"},
        {"type": "function_call_output", "call_id": "call_2", "output": "18 C"},
    ])
    assert fake_engine.requests[-1]["messages"] == [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Lyon"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "18 C"},
    ]


async def test_unknown_fields_reach_the_engine_and_hints_do_not(
        client: httpx.AsyncClient, fake_engine: FakeEngine) -> None:
    answer = await client.post("/v1/responses", json={
        "model": BASE_MODEL, "input": "hi", "top_k": 5, "repetition_penalty": 1.1,
        "reasoning": {"effort": "none"}, "include": [], "service_tier": "auto",
        "truncation": "disabled", "prompt_cache_key": "k", "text": {"verbosity": "low"},
        "tools": [], "parallel_tool_calls": None})
    assert answer.status_code == 200, answer.text
    sent = fake_engine.requests[-1]
    assert sent["top_k"] == 5 and sent["repetition_penalty"] == 1.1
    assert not {"reasoning", "include", "service_tier", "truncation", "text"} & set(sent)


@pytest.mark.parametrize(("field", "value"), [
    ("background", True), ("conversation", "conv_1"), ("prompt", {"id": "pmpt_1"}),
    ("max_tool_calls", 3), ("top_logprobs", 2), ("truncation", "auto"),
    ("include", ["file_search_call.results"]),
    ("tools", [{"type": "web_search"}]), ("tool_choice", {"type": "file_search"}),
    ("text", {"format": {"type": "grammar"}}),
])
async def test_what_cannot_be_honoured_is_refused_by_name(
        client: httpx.AsyncClient, fake_engine: FakeEngine, field: str, value: Any) -> None:
    answer = await client.post("/v1/responses",
                               json={"model": BASE_MODEL, "input": "hi", field: value})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"].split(".")[0].split("[")[0] == field, error
    assert field.split("_")[0] in error["message"] or "not supported" in error["message"]
    assert fake_engine.requests == []


@pytest.mark.parametrize(("body", "param"), [
    ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"role": "wizard", "content": "hi"}]}, "input[0].role"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"input": ""}, "input"),
    ({"input": "hi", "previous_response_id": "resp_nope"}, "previous_response_id"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x",
                                         "schema": {"$ref": "http://evil.example/s.json"}}}},
     "response_format"),
    ({"input": [{"role": "user", "content": "hi"}] * 300}, "messages"),
    ({"input": "hi", "max_output_tokens": 10**6}, "max_tokens"),
])
async def test_bad_input_is_a_clear_400(client: httpx.AsyncClient, fake_engine: FakeEngine,
                                        body: dict[str, Any], param: str) -> None:
    answer = await client.post("/v1/responses", json={"model": BASE_MODEL, **body})
    assert answer.status_code == 400, answer.text
    assert (answer.json()["error"]["param"] or "").startswith(param.split(".")[0].split("[")[0])
    assert fake_engine.requests == []


async def test_a_json_schema_deviation_is_repaired(sdk: openai.AsyncOpenAI,
                                                   fake_engine: FakeEngine) -> None:
    fake_engine.enqueue('{"category": "billing", "priority": "urgent", "escalate": true}')
    fake_engine.enqueue(TICKET)
    parsed = await sdk.responses.parse(model=BASE_MODEL, input="I was charged twice.",
                                       text_format=Ticket)
    assert parsed.output_parsed == Ticket(category="billing", priority="high", escalate=True)
    verdict = (parsed.model_extra or {})["structured"]
    assert verdict["valid"] and verdict["attempts"] == 2
    assert [d["kind"] for d in verdict["deviations"]] == ["schema_violation"]
    assert len(fake_engine.requests) == 2


async def test_a_registered_schema_by_name_and_json_object(client: httpx.AsyncClient,
                                                           fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(TICKET)
    named = await client.post("/v1/responses", json={
        "model": BASE_MODEL, "input": "route it",
        "text": {"format": {"type": "json_schema", "name": "ticket"}}})
    assert named.json()["structured"]["schema"] == "ticket", named.text
    fake_engine.enqueue("not json at all")
    fake_engine.enqueue('{"ok": true}')
    anything = await client.post("/v1/responses", json={
        "model": BASE_MODEL, "input": "json please", "text": {"format": {"type": "json_object"}}})
    assert json.loads(anything.json()["output"][0]["content"][0]["text"]) == {"ok": True}
    assert anything.json()["structured"]["attempts"] == 2


async def test_a_function_call_is_validated_and_repaired(sdk: openai.AsyncOpenAI,
                                                         fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("", finish_reason="tool_calls",
                        tool_calls=[("route_ticket", '{"category": "billing"}')])
    # The repair is a constrained attempt: the engine answers the call as JSON.
    fake_engine.enqueue(json.dumps({"name": "route_ticket", "arguments": json.loads(TICKET)}))
    response = await sdk.responses.create(
        model=BASE_MODEL, input="I was charged twice.", tools=[ROUTE],  # type: ignore[call-overload]
        tool_choice={"type": "function", "name": "route_ticket"})
    (call,) = response.output
    assert call.type == "function_call" and call.name == "route_ticket"
    assert json.loads(call.arguments) == json.loads(TICKET) and call.call_id
    verdict = (response.model_extra or {})["structured"]
    assert verdict["valid"] and verdict["attempts"] == 2
    sent = fake_engine.requests[0]
    assert sent["tools"][0]["function"]["name"] == "route_ticket"


async def test_responses_count_in_the_request_metrics(client: httpx.AsyncClient,
                                                      fake_engine: FakeEngine) -> None:
    fake_engine.enqueue('{"ok": 1}')
    answer = await client.post("/v1/responses", json={
        "model": BASE_MODEL, "input": "x", "text": {"format": {"type": "json_object"}}})
    assert answer.status_code == 200 and answer.headers["x-request-id"]
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_requests_total", endpoint="responses", status="200") == 1
    assert value(samples, "gateway_structured_checks_total", schema="json_object") == 1


async def test_responses_traffic_is_captured_for_export(make_settings: SettingsFactory,
                                                       fake_engine: FakeEngine,
                                                       tmp_path: Path) -> None:
    capture = tmp_path / "examples"
    app = create_app(make_settings(structured={"capture": {"enabled": True,
                                                           "dir": str(capture)}}))
    fake_engine.enqueue("Sure, this is billing.")
    fake_engine.enqueue(TICKET)
    async for client in start(app):
        answer = await client.post("/v1/responses", json={
            "model": BASE_MODEL, "input": "I was charged twice.", "instructions": "Route it.",
            "text": {"format": {"type": "json_schema", "name": "ticket"}}})
        assert answer.status_code == 200, answer.text
    (example,) = [json.loads(line) for line in
                  (capture / "base" / "ticket.jsonl").read_text().splitlines()]
    assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
    assert json.loads(example["messages"][-1]["content"]) == json.loads(TICKET)
    assert example["deviations"] == ["not_json"]
