from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import BASE_MODEL
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio


async def test_chat_completion_through_the_sdk(sdk: openai.AsyncOpenAI,
                                               fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("Paris is the capital of France.")
    answer = await sdk.chat.completions.create(
        model=BASE_MODEL, messages=[{"role": "user", "content": "Capital of France?"}],
        max_tokens=20, temperature=0, seed=7,
    )
    assert answer.choices[0].message.content == "Paris is the capital of France."
    assert answer.model == BASE_MODEL
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    sent = fake_engine.requests[-1]
    assert sent["max_tokens"] == 20 and sent["seed"] == 7 and sent["temperature"] == 0


async def test_stream_through_the_sdk(sdk: openai.AsyncOpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("one two three")
    stream = await sdk.chat.completions.create(
        model=BASE_MODEL, messages=[{"role": "user", "content": "count"}], stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        pieces += [c.delta.content or "" for c in chunk.choices]
    assert "".join(pieces) == "one two three"
    assert usage is not None and usage.completion_tokens == 3


async def test_stream_leaves_out_usage_unless_asked(client: httpx.AsyncClient,
                                                    fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("a b")
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}
    response = await client.post("/v1/chat/completions", json=body)
    events = [line for line in response.text.splitlines() if line.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    assert not any('"usage"' in e for e in events)
    assert fake_engine.requests[-1]["stream_options"] == {"include_usage": True}


async def test_text_completion(sdk: openai.AsyncOpenAI, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue(" world")
    answer = await sdk.completions.create(model=BASE_MODEL, prompt="Hello", max_tokens=3,
                                          logprobs=2)
    assert answer.choices[0].text == " world"
    assert fake_engine.requests[-1]["logprobs"] == 2


async def test_unknown_fields_reach_the_engine(client: httpx.AsyncClient,
                                               fake_engine: FakeEngine) -> None:
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "x"}],
            "top_k": 5, "repetition_penalty": 1.1, "n": 2}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert len(response.json()["choices"]) == 2
    sent = fake_engine.requests[-1]
    assert sent["top_k"] == 5 and sent["repetition_penalty"] == 1.1 and sent["n"] == 2


async def test_unknown_model_is_404_in_the_envelope(sdk: openai.AsyncOpenAI,
                                                    fake_engine: FakeEngine) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.chat.completions.create(model="nope",
                                          messages=[{"role": "user", "content": "x"}])
    assert caught.value.body is not None
    assert "nope" in str(caught.value.body)
    assert fake_engine.requests == []


async def test_engine_client_errors_pass_through(client: httpx.AsyncClient,
                                                 fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("This model's maximum context length is 2048 tokens.", status=400)
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "x"}]}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert "maximum context length" in response.json()["error"]["message"]


async def test_request_id_is_returned_and_forwarded(client: httpx.AsyncClient,
                                                    fake_engine: FakeEngine) -> None:
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "x"}]}
    given = await client.post("/v1/chat/completions", json=body,
                              headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.post("/v1/chat/completions", json=body)
    assert len(made.headers["x-request-id"]) == 32


async def test_a_stream_refused_by_the_engine_is_an_http_error(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    fake_engine.enqueue("This model's maximum context length is 2048 tokens.", status=400)
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert "maximum context length" in response.json()["error"]["message"]
    again = await client.post("/v1/chat/completions", json=body)
    assert again.status_code == 200 and again.text.rstrip().endswith("data: [DONE]")
