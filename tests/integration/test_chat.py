"""Chat, streams, completions and errors through the gateway, on the real engine."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.integration.conftest import MODEL, RealGateway

pytestmark = pytest.mark.integration

HELLO: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say hello in one short sentence."}]


def test_chat_completion(real_gateway: RealGateway) -> None:
    answer = real_gateway.sdk().chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=24, temperature=0)
    assert answer.choices[0].message.content
    assert answer.model == MODEL
    assert answer.usage is not None and 0 < answer.usage.completion_tokens <= 24


def test_chat_stream(real_gateway: RealGateway) -> None:
    stream = real_gateway.sdk().chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=24, stream=True,
        stream_options={"include_usage": True})
    pieces, usage = [], None
    for chunk in stream:
        pieces += [c.delta.content or "" for c in chunk.choices]
        usage = chunk.usage or usage
    assert "".join(pieces).strip()
    assert usage is not None and usage.completion_tokens > 0


def test_text_completion(real_gateway: RealGateway) -> None:
    answer = real_gateway.sdk().completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert answer.choices[0].text


def test_models_list(real_gateway: RealGateway) -> None:
    ids = [m.id for m in real_gateway.sdk().models.list()]
    assert ids[0] == MODEL


def test_unknown_model_is_not_found(real_gateway: RealGateway) -> None:
    with pytest.raises(openai.NotFoundError):
        real_gateway.sdk().chat.completions.create(
            model="no-such-model", messages=HELLO)


def test_invalid_input_is_bad_request(real_gateway: RealGateway) -> None:
    sdk = real_gateway.sdk()
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model=MODEL, messages=HELLO,
                                    max_tokens=-1)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model=MODEL, messages=[], max_tokens=5)


def test_prompt_beyond_the_context_window(real_gateway: RealGateway) -> None:
    long_prompt = "word " * 5000
    with pytest.raises(openai.BadRequestError) as caught:
        real_gateway.sdk().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long_prompt}], max_tokens=5)
    assert "context" in str(caught.value).lower()
    assert real_gateway.sdk().chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=5).choices


def test_wrong_key_is_refused(real_gateway: RealGateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        real_gateway.sdk(key="wrong").models.list()


def test_seeded_requests_keep_the_engine_alive(real_gateway: RealGateway) -> None:
    sdk = real_gateway.sdk()
    for seed in range(6):
        sdk.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=8,
                                    temperature=1.0, seed=seed)
    assert sdk.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4).choices


def test_engine_metrics_are_reachable(real_gateway: RealGateway) -> None:
    """With keys configured, the engine's metrics need a metrics or admin key."""
    with real_gateway.admin() as admin:
        response = admin.get("/metrics/engine", timeout=30)
    assert response.status_code == 200
    assert "vllm:" in response.text
    assert httpx.get(f"{real_gateway.url}/metrics/engine", timeout=30).status_code == 401
