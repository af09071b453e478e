"""Tool calls on the real engine, through the client libraries people use for structure:
the openai SDK, Instructor, pydantic-ai and LangChain, on the base model and on the shipped
ticket-router adapter. Each must come back with a valid, parsed object."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import instructor
import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import SecretStr
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from tests.integration.conftest import MAX_TOKENS, TICKET, USER_KEY, RealGateway, Ticket

pytestmark = pytest.mark.integration

ROUTE = openai.pydantic_function_tool(Ticket, name="route_ticket")


def _verdict(completion: Any) -> dict[str, Any]:
    verdict = (completion.model_extra or {})["structured"]
    assert verdict["valid"], verdict
    return dict(verdict)


def _ticket_of(completion: Any) -> Ticket:
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name == "route_ticket"
    return Ticket.model_validate_json(call.function.arguments)


@pytest.mark.parametrize("choice", [
    "required", {"type": "function", "function": {"name": "route_ticket"}}])
def test_openai_sdk_required_and_named(real_gateway: RealGateway, model: str,
                                       choice: Any) -> None:
    completion = real_gateway.sdk().chat.completions.create(
        model=model, messages=[{"role": "user", "content": TICKET}], tools=[ROUTE],
        tool_choice=choice, max_tokens=MAX_TOKENS, temperature=0)
    assert isinstance(_ticket_of(completion), Ticket)
    assert completion.choices[0].finish_reason == "tool_calls"
    _verdict(completion)


def test_openai_sdk_auto(real_gateway: RealGateway, model: str) -> None:
    """Under auto a prose answer is as valid as a call; a call must parse."""
    completion = real_gateway.sdk().chat.completions.create(
        model=model, messages=[{"role": "user", "content": TICKET}], tools=[ROUTE],
        tool_choice="auto", max_tokens=MAX_TOKENS, temperature=0)
    _verdict(completion)
    if completion.choices[0].message.tool_calls:
        _ticket_of(completion)


def test_openai_sdk_parse_with_a_pydantic_function_tool(real_gateway: RealGateway,
                                                        model: str) -> None:
    completion = real_gateway.sdk().chat.completions.parse(
        model=model, messages=[{"role": "user", "content": TICKET}], tools=[ROUTE],
        tool_choice="required", max_tokens=MAX_TOKENS, temperature=0)
    (call,) = completion.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, Ticket)


def test_openai_sdk_stream(real_gateway: RealGateway, model: str) -> None:
    stream = real_gateway.sdk().chat.completions.create(
        model=model, messages=[{"role": "user", "content": TICKET}], tools=[ROUTE],
        tool_choice="required", max_tokens=MAX_TOKENS, temperature=0, stream=True)
    arguments = "".join(call.function.arguments or "" for chunk in stream
                        for choice in chunk.choices for call in choice.delta.tool_calls or []
                        if call.function)
    assert isinstance(Ticket.model_validate_json(arguments), Ticket)


def test_instructor_default_mode(real_gateway: RealGateway, model: str) -> None:
    client = instructor.from_openai(real_gateway.sdk())
    assert client.mode is instructor.Mode.TOOLS
    ticket = client.chat.completions.create(
        model=model, response_model=Ticket, max_retries=1, max_tokens=MAX_TOKENS,
        temperature=0, messages=[{"role": "user", "content": TICKET}])
    assert isinstance(ticket, Ticket)


def test_pydantic_ai_default_tool_output(real_gateway: RealGateway, model: str) -> None:
    async def run() -> Ticket:
        async with openai.AsyncOpenAI(base_url=f"{real_gateway.url}/v1", api_key=USER_KEY,
                                      max_retries=0) as client:
            provider = OpenAIProvider(openai_client=client)
            agent = Agent(OpenAIChatModel(model, provider=provider), output_type=Ticket,
                          model_settings=ModelSettings(max_tokens=MAX_TOKENS, temperature=0),
                          retries=1)
            return (await agent.run(TICKET)).output

    assert isinstance(asyncio.run(run()), Ticket)


def test_langchain_function_calling(real_gateway: RealGateway, model: str) -> None:
    with httpx.Client(timeout=120) as http:
        chat = ChatOpenAI(model=model, base_url=f"{real_gateway.url}/v1",
                          api_key=SecretStr(USER_KEY), max_retries=0, temperature=0,
                          max_completion_tokens=MAX_TOKENS, http_client=http)
        ticket = chat.with_structured_output(Ticket, method="function_calling").invoke(TICKET)
    assert isinstance(ticket, Ticket)


def test_tool_results_in_the_history_render(real_gateway: RealGateway, model: str) -> None:
    """A second turn after a call and its result: the template renders both."""
    call = {"id": "call_1", "type": "function",
            "function": {"name": "route_ticket", "arguments": json.dumps(
                {"category": "billing", "priority": "high", "escalate": False})}}
    completion = real_gateway.sdk().chat.completions.create(
        model=model, tools=[ROUTE], max_tokens=16, temperature=0, messages=[
            {"role": "user", "content": TICKET},
            {"role": "assistant", "content": None, "tool_calls": [call]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "call_1", "content": "routed to billing"}])
    _verdict(completion)
