"""The Responses API on the real engine, through the clients that default to it: the openai
SDK, the OpenAI Agents SDK, pydantic-ai and LangChain, on the base model and on the shipped
ticket-router adapter. Each must come back with a valid, parsed object."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from agents import Agent as AgentsAgent
from agents import ModelSettings as AgentsSettings
from agents import OpenAIProvider as AgentsProvider
from agents import RunConfig, Runner, set_tracing_disabled
from langchain_openai import ChatOpenAI
from pydantic import SecretStr
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from tests.integration.conftest import MAX_TOKENS, MODEL, TICKET, USER_KEY, RealGateway, Ticket
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.integration

set_tracing_disabled(True)  # the Agents SDK would send its traces to OpenAI

def _async_sdk(gateway: RealGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=USER_KEY, max_retries=0,
                              timeout=300)


def test_openai_sdk_create_and_parse(real_gateway: RealGateway, model: str) -> None:
    sdk = real_gateway.sdk()
    parsed = sdk.responses.parse(model=model, input=TICKET, text_format=Ticket,
                                 max_output_tokens=MAX_TOKENS, temperature=0)
    assert isinstance(parsed.output_parsed, Ticket)
    assert (parsed.model_extra or {})["structured"]["valid"]
    assert sdk.responses.retrieve(parsed.id).output_text == parsed.output_text


def test_openai_sdk_stream(real_gateway: RealGateway, model: str) -> None:
    with real_gateway.sdk().responses.stream(
            model=model, input=TICKET, text_format=Ticket, max_output_tokens=MAX_TOKENS,
            temperature=0) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert isinstance(final.output_parsed, Ticket)


def test_agents_sdk_default_provider(real_gateway: RealGateway, model: str) -> None:
    agent = AgentsAgent(name="router", instructions="Route the support ticket.",
                        output_type=Ticket, model=model,
                        model_settings=AgentsSettings(max_tokens=MAX_TOKENS, temperature=0))

    async def run() -> Any:
        async with _async_sdk(real_gateway) as client:
            config = RunConfig(model_provider=AgentsProvider(openai_client=client))
            return (await Runner.run(agent, TICKET, run_config=config)).final_output

    assert isinstance(asyncio.run(run()), Ticket)


def test_pydantic_ai_responses_model(real_gateway: RealGateway, model: str) -> None:
    async def run() -> Ticket:
        async with _async_sdk(real_gateway) as client:
            responses = OpenAIResponsesModel(model, provider=OpenAIProvider(openai_client=client))
            agent = Agent(responses, output_type=NativeOutput(Ticket), retries=1,
                          model_settings=ModelSettings(max_tokens=MAX_TOKENS, temperature=0))
            return (await agent.run(TICKET)).output

    assert isinstance(asyncio.run(run()), Ticket)


def test_langchain_responses_api(real_gateway: RealGateway, model: str) -> None:
    with httpx.Client(timeout=300) as http:
        chat = ChatOpenAI(model=model, base_url=f"{real_gateway.url}/v1",
                          api_key=SecretStr(USER_KEY), use_responses_api=True, http_client=http,
                          max_retries=0, temperature=0, max_tokens=MAX_TOKENS)
        ticket = chat.with_structured_output(Ticket).invoke(TICKET)
    assert isinstance(ticket, Ticket)


def test_a_two_turn_conversation(real_gateway: RealGateway) -> None:
    sdk = real_gateway.sdk()
    first = sdk.responses.create(model=MODEL, input="My name is Ada. Say hello.",
                                 max_output_tokens=24, temperature=0)
    second = sdk.responses.parse(model=MODEL, input=TICKET, text_format=Ticket,
                                 previous_response_id=first.id, max_output_tokens=MAX_TOKENS,
                                 temperature=0)
    assert isinstance(second.output_parsed, Ticket)
    items = sdk.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    samples = parse(real_gateway.metrics())
    assert value(samples, "gateway_requests_total", endpoint="responses", status="200") >= 2
