"""The Responses paths of the four client libraries, as they come by default, against the
fake engine: none of their default requests is refused, and each gets a parsed object."""

from __future__ import annotations

from typing import Any, Literal

import openai
import pytest
from agents import Agent as AgentsAgent
from agents import OpenAIResponsesModel as AgentsResponsesModel
from agents import Runner, set_tracing_disabled
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.conftest import BASE_MODEL
from tests.fakes.engine import FakeEngine
from tests.responses.conftest import TICKET

pytestmark = pytest.mark.anyio

set_tracing_disabled(True)  # the Agents SDK would send traces to OpenAI


class Ticket(BaseModel):
    category: Literal["billing", "technical", "account", "other"]
    priority: Literal["low", "medium", "high"]
    escalate: bool


EXPECTED = Ticket(category="billing", priority="high", escalate=True)


async def test_the_openai_sdk_parse(sdk: openai.AsyncOpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(TICKET)
    parsed = await sdk.responses.parse(model=BASE_MODEL, input="charged twice",
                                       text_format=Ticket)
    assert parsed.output_parsed == EXPECTED


async def test_the_agents_sdk_default_model(sdk: openai.AsyncOpenAI,
                                            fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(TICKET)
    agent = AgentsAgent(name="router", instructions="Route the ticket.", output_type=Ticket,
                        model=AgentsResponsesModel(BASE_MODEL, openai_client=sdk))
    result = await Runner.run(agent, "I was charged twice.")
    assert result.final_output == EXPECTED
    assert fake_engine.requests[-1]["messages"][0] == {"role": "system",
                                                       "content": "Route the ticket."}


async def test_pydantic_ai_responses_model_native_output(sdk: openai.AsyncOpenAI,
                                                         fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(TICKET)
    model = OpenAIResponsesModel(BASE_MODEL, provider=OpenAIProvider(openai_client=sdk))
    agent: Agent[None, Ticket] = Agent(model, output_type=NativeOutput(Ticket))
    assert (await agent.run("I was charged twice.")).output == EXPECTED


async def test_langchain_responses_api_structured_output(sdk: openai.AsyncOpenAI,
                                                         fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(TICKET)
    chat = ChatOpenAI(model=BASE_MODEL, base_url="http://gateway/v1",
                      api_key=SecretStr("unused"), use_responses_api=True,
                      http_async_client=sdk._client, max_retries=0)
    ticket: Any = await chat.with_structured_output(Ticket).ainvoke("I was charged twice.")
    assert ticket == EXPECTED
