"""The retry loop against a scripted fake engine, through the gateway's HTTP API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from gateway.app import create_app
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.anyio

TICKET = '{"category": "billing", "priority": "high", "escalate": true}'
PROSE = "Sure! This looks like a billing problem with high priority."
TICKET_FORMAT = {"type": "json_schema", "json_schema": {"name": "ticket"}}


def _ticket_request(**extra: Any) -> dict[str, Any]:
    return {"model": BASE_MODEL, "response_format": TICKET_FORMAT, "max_tokens": 100,
            "messages": [{"role": "user", "content": "I was charged twice."}], **extra}


async def _metrics(client: httpx.AsyncClient) -> dict[Any, float]:
    return parse((await client.get("/metrics")).text)


async def test_valid_first_answer_is_one_check(client: httpx.AsyncClient,
                                               fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(TICKET)
    response = await client.post("/v1/chat/completions", json=_ticket_request())
    assert response.status_code == 200
    body = response.json()
    assert json.loads(body["choices"][0]["message"]["content"])["category"] == "billing"
    assert body["structured"]["attempts"] == 1 and body["structured"]["valid"] is True
    assert response.headers["x-structured-deviations"] == "none"
    assert "response_format" not in fake_engine.requests[0]
    samples = await _metrics(client)
    assert value(samples, "gateway_structured_checks_total", schema="ticket") == 1
    assert value(samples, "gateway_structured_deviations_total", schema="ticket") == 0


async def test_prose_then_constrained_then_valid(client: httpx.AsyncClient,
                                                 fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(PROSE, completion_tokens=12)
    fake_engine.enqueue(TICKET, completion_tokens=20)
    response = await client.post("/v1/chat/completions", json=_ticket_request())
    assert response.status_code == 200
    body = response.json()
    assert body["structured"]["attempts"] == 2
    assert body["structured"]["strategies"] == ["constrained"]
    assert [d["kind"] for d in body["structured"]["deviations"]] == ["not_json"]
    # The prose was stopped after its first token (fail fast): 1 + 20 tokens, not 12 + 20.
    assert body["usage"]["completion_tokens"] == 21
    assert body["usage"]["prompt_tokens"] == 20
    second = fake_engine.requests[1]
    assert second["response_format"]["type"] == "structural_tag"
    assert second["max_tokens"] <= 100
    assert response.headers["x-structured-attempts"] == "2"
    samples = await _metrics(client)
    assert value(samples, "gateway_structured_checks_total", adapter="base") == 2
    assert value(samples, "gateway_structured_deviations_total", kind="not_json") == 1
    assert value(samples, "gateway_structured_retries_total", strategy="constrained") == 1
    assert value(samples, "gateway_structured_recoveries_total") == 1


async def test_each_kind_triggers_the_next_strategy(client: httpx.AsyncClient,
                                                    fake_engine: FakeEngine) -> None:
    fake_engine.enqueue('```json\n{"category": "billing"}\n```')  # extra_text
    fake_engine.enqueue('{"category": "billing", "priority": "critical", "escalate": true}')
    fake_engine.enqueue(TICKET)
    retry = {"max_attempts": 3, "strategies": ["constrained", "reask"]}
    response = await client.post("/v1/chat/completions", json=_ticket_request(retry=retry))
    assert response.status_code == 200
    report = response.json()["structured"]
    assert [d["kind"] for d in report["deviations"]] == ["extra_text", "schema_violation"]
    assert report["deviations"][1]["keyword"] == "enum"
    assert report["strategies"] == ["constrained", "reask"]
    reask = fake_engine.requests[2]["messages"]
    assert reask[-2]["role"] == "assistant" and "critical" in reask[-2]["content"]
    assert "critical" in reask[-1]["content"]
    assert "response_format" not in fake_engine.requests[2]


async def test_extract_recovers_without_an_engine_call(client: httpx.AsyncClient,
                                                       fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(f"Here is the ticket: {TICKET} Hope that helps!")
    retry = {"strategies": ["extract", "reask"]}
    response = await client.post("/v1/chat/completions", json=_ticket_request(retry=retry))
    assert response.status_code == 200
    body = response.json()
    assert json.loads(body["choices"][0]["message"]["content"])["escalate"] is True
    assert body["structured"]["strategies"] == ["extract"]
    assert len(fake_engine.requests) == 1
    samples = await _metrics(client)
    assert value(samples, "gateway_structured_deviations_total", kind="extra_text") == 1


async def test_exhausted_is_422_with_the_last_answer(sdk: openai.AsyncOpenAI,
                                                     fake_engine: FakeEngine) -> None:
    for _ in range(3):
        fake_engine.enqueue(PROSE)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await sdk.chat.completions.create(**_ticket_request())
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["last_answer"] == PROSE
    assert [d["kind"] for d in error["structured"]["deviations"]] == ["not_json"] * 3
    assert len(fake_engine.requests) == 3


async def test_truncated_run_away_is_classified(client: httpx.AsyncClient,
                                                fake_engine: FakeEngine) -> None:
    fake_engine.enqueue('{"category": "billing",' + " \n" * 500, finish_reason="length")
    fake_engine.enqueue(TICKET)
    response = await client.post("/v1/chat/completions", json=_ticket_request())
    assert response.json()["structured"]["deviations"][0]["kind"] == "truncated"


async def test_sdk_reads_the_extension_field(sdk: openai.AsyncOpenAI,
                                             fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(PROSE)
    fake_engine.enqueue(TICKET)
    answer = await sdk.chat.completions.create(**_ticket_request())
    assert json.loads(answer.choices[0].message.content or "")["priority"] == "high"
    extra = answer.model_extra or {}
    assert extra["structured"]["attempts"] == 2


async def test_streaming_with_a_schema_ends_with_a_verdict(client: httpx.AsyncClient,
                                                           fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(PROSE)
    fake_engine.enqueue(TICKET)
    response = await client.post("/v1/chat/completions", json=_ticket_request(
        stream=True, stream_options={"include_usage": True}))
    events = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    assert response.text.rstrip().endswith("data: [DONE]")
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events
                      if e["choices"])
    assert json.loads(content)["category"] == "billing"
    verdicts = [e["structured"] for e in events if "structured" in e]
    assert verdicts == [events[-2]["structured"]] and verdicts[0]["valid"] is True
    assert events[-1]["usage"]["total_tokens"] > 0


async def test_budget_stops_retries(make_settings: SettingsFactory,
                                    fake_engine: FakeEngine) -> None:
    budget = {"ratio": 0.0, "window_s": 60, "min_retries": 1}
    app = create_app(make_settings(structured={"retry": {"budget": budget}}))
    for _ in range(3):
        fake_engine.enqueue(PROSE)
    async for client in start(app):
        first = await client.post("/v1/chat/completions", json=_ticket_request())
        second = await client.post("/v1/chat/completions", json=_ticket_request())
        assert first.status_code == second.status_code == 422
        assert first.json()["error"]["structured"]["attempts"] == 2  # the one retry allowed
        report = second.json()["error"]["structured"]
        assert report["attempts"] == 1 and report["retry_budget_exhausted"] is True
        samples = parse((await client.get("/metrics")).text)
        assert value(samples, "gateway_structured_retry_budget_exhausted_total") >= 1


async def test_flag_mode_returns_the_invalid_answer(make_settings: SettingsFactory,
                                                    fake_engine: FakeEngine) -> None:
    app = create_app(make_settings(structured={"on_exhausted": "flag"}))
    for _ in range(3):
        fake_engine.enqueue(PROSE)
    async for client in start(app):
        response = await client.post("/v1/chat/completions", json=_ticket_request())
        assert response.status_code == 200
        assert response.json()["structured"]["valid"] is False
        assert response.headers["x-structured-valid"] == "false"


@pytest.mark.parametrize("response_format", [
    {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "stsring"}}},
    {"type": "json_schema", "json_schema": {"name": "t", "schema": {
        "type": "string", "pattern": "(?<=a)b"}}},
    {"type": "json_schema", "json_schema": {"name": "nope"}},
    {"type": "xml"},
])
async def test_bad_response_formats_are_400(client: httpx.AsyncClient, fake_engine: FakeEngine,
                                            response_format: dict[str, Any]) -> None:
    response = await client.post("/v1/chat/completions",
                                 json=_ticket_request(response_format=response_format))
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("response_format")
    assert fake_engine.requests == []


async def test_bad_retry_override_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions",
                                 json=_ticket_request(retry={"max_attempts": 99}))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "retry.max_attempts"


async def test_text_completions_are_validated_too(client: httpx.AsyncClient,
                                                  fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("Billing, I think.")
    fake_engine.enqueue(TICKET)
    body = {"model": BASE_MODEL, "prompt": "Ticket: charged twice.\nJSON:",
            "response_format": TICKET_FORMAT, "retry": {"strategies": ["reask"]}}
    response = await client.post("/v1/completions", json=body)
    assert response.status_code == 200
    assert json.loads(response.json()["choices"][0]["text"])["category"] == "billing"
    # The reask quotes what the first attempt said before it was stopped.
    assert "Billing," in fake_engine.requests[1]["prompt"]


async def test_exhaustion_advice_fits_the_deviations(client: httpx.AsyncClient,
                                                     fake_engine: FakeEngine) -> None:
    for _ in range(3):
        fake_engine.enqueue('{"category": "bil', finish_reason="length")
    response = await client.post("/v1/chat/completions", json=_ticket_request(max_tokens=5))
    assert response.status_code == 422
    assert "raise max_tokens" in response.json()["error"]["message"]


async def test_each_adapter_spends_its_own_budget(make_settings: SettingsFactory,
                                                  fake_engine: FakeEngine) -> None:
    from gateway.inference.structured import StructuredRunner

    budget = {"ratio": 0.0, "window_s": 60, "min_retries": 1}
    app = create_app(make_settings(structured={"retry": {"budget": budget}}))
    async for _ in start(app):
        runner = app.state.inference.structured
        assert isinstance(runner, StructuredRunner)
        base, other = runner.budget("base"), runner.budget("ticket-router")
        assert base.try_spend() and not base.try_spend()
        assert other.try_spend()


async def test_a_grammar_the_engine_refuses_moves_on_to_the_next_strategy(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue("Sure, here you go.")
    fake_engine.enqueue("grammar compilation failed", status=400)
    fake_engine.enqueue(TICKET)
    body = _ticket_request(retry={"max_attempts": 3, "strategies": ["constrained", "reask"]})
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    verdict = response.json()["structured"]
    assert verdict["valid"] and verdict["attempts"] == 2
    assert verdict["strategies"] == ["constrained", "reask"]
    assert "response_format" in fake_engine.requests[1]  # the constrained attempt


async def test_a_refused_grammar_with_nothing_else_to_try_is_exhausted(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue("Sure, here you go.")
    fake_engine.enqueue("grammar compilation failed", status=400)
    body = _ticket_request(retry={"max_attempts": 3, "strategies": ["constrained"]})
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 422
    assert len(fake_engine.requests) == 2
