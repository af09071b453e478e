"""Bad input gets a clear 4xx in OpenAI's envelope, and the gateway keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import BASE_MODEL
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hi"}]


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": BASE_MODEL, "messages": MESSAGES, **fields}


BAD_BODIES: list[tuple[str, Any, int, str | None]] = [
    ("wrong type", _chat(temperature="hot"), 400, "temperature"),
    ("no messages", {"model": BASE_MODEL, "messages": []}, 400, "messages"),
    ("empty messages", _chat(messages=[{"role": "user", "content": ""}]), 400, "messages"),
    ("bad role", _chat(messages=[{"role": "wizard", "content": "x"}]), 400, "messages.0.role"),
    ("negative max_tokens", _chat(max_tokens=-5), 400, "max_tokens"),
    ("huge max_tokens", _chat(max_tokens=10**9), 400, "max_tokens"),
    ("huge n", _chat(n=1000), 400, "n"),
    ("no model", {"messages": MESSAGES}, 400, "model"),
    ("unknown model", _chat(model="gpt-99"), 404, "model"),
    ("body is a list", [1, 2], 400, None),
]


@pytest.mark.parametrize(("name", "body", "status", "param"), BAD_BODIES,
                         ids=[b[0] for b in BAD_BODIES])
async def test_bad_bodies(client: httpx.AsyncClient, fake_engine: FakeEngine, name: str,
                          body: Any, status: int, param: str | None) -> None:
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["param"] == param
    assert fake_engine.requests == []
    healthy = await client.post("/v1/chat/completions", json=_chat())
    assert healthy.status_code == 200


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", content=b'{"model": ',
                                 headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_body_too_large(client: httpx.AsyncClient) -> None:
    huge = "x" * (3 * 1024 * 1024)
    response = await client.post("/v1/chat/completions",
                                 json=_chat(messages=[{"role": "user", "content": huge}]))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


async def test_unknown_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_chunked_body_too_large(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "base-model", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * 100_000
        yield b'"}]}'

    response = await client.post("/v1/chat/completions", content=chunks(),
                                 headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


async def test_a_list_of_prompts_counts_against_max_n(client: httpx.AsyncClient,
                                                      fake_engine: FakeEngine) -> None:
    body = {"model": BASE_MODEL, "prompt": ["a"] * 200, "max_tokens": 5}
    response = await client.post("/v1/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"
    assert fake_engine.requests == []
