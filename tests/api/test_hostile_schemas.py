"""Hostile schemas are refused through the API while other traffic is served.

How fast each is refused is measured by benchmarks/bench_hostile_schemas.py; that other
traffic is served meanwhile, by tests/api/test_hostile_corpus.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import BASE_MODEL
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


HOSTILE: dict[str, dict[str, Any]] = {
    "misspelled type": {"type": "stsring"},
    "catastrophic pattern": {"type": "string", "pattern": "(a+)+$"},
    "50 levels": _nested(50),
    "10,000-value enum": {"enum": [f"v{i}" for i in range(10_000)]},
    "recursive ref": {
        "$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}}},
        "$ref": "#/$defs/n",
    },
    "remote ref": {"$ref": "https://example.invalid/schema.json"},
    "1 MB schema": {"type": "object", "description": "x" * 1_000_000},
}


def _request(schema: dict[str, Any]) -> dict[str, Any]:
    return {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "hostile", "schema": schema}}}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_schema_is_a_fast_400(client: httpx.AsyncClient, fake_engine: FakeEngine,
                                            name: str) -> None:
    response = await client.post("/v1/chat/completions", json=_request(HOSTILE[name]))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"].startswith("response_format")
    assert error["message"]
    assert fake_engine.requests == []


async def test_empty_schema_is_accepted_and_validates_json(client: httpx.AsyncClient,
                                                           fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("not json at all")
    fake_engine.enqueue('{"anything": 1}')
    response = await client.post("/v1/chat/completions", json=_request({}))
    assert response.status_code == 200
    assert response.json()["structured"]["attempts"] == 2


@pytest.mark.timeout(60)  # a hang guard: backtracking would take years on this answer
async def test_a_long_answer_is_matched_in_linear_time(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    # Passes the schema bounds, yet Python's re needs seconds for 28 characters of it.
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^((a+){1})+$"}},
              "required": ["s"]}
    fake_engine.enqueue('{"s": "' + "a" * 50_000 + '!"}')
    fake_engine.enqueue('{"s": "' + "a" * 50_000 + '"}')
    response = await client.post("/v1/chat/completions", json=_request(schema))
    assert response.status_code == 200
    verdict = response.json()["structured"]
    assert verdict["attempts"] == 2 and verdict["deviations"][0]["keyword"] == "pattern"
