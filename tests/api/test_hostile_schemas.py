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
    "look-behind pattern": {"type": "string", "pattern": "(?<=a)b"},
    "100 levels": _nested(100),
    "20,000-value enum": {"enum": [f"v{i}" for i in range(20_000)]},
    "remote ref": {"$ref": "https://example.invalid/schema.json"},
    "pointer to nowhere": {"properties": {"a": {"$ref": "#/$defs/missing"}}},
    "2 MB schema": {"type": "object", "description": "x" * 2_000_000},
    "5,000 properties": {"type": "object",
                         "properties": {f"p{i}": {"type": "string"} for i in range(5000)}},
}

TREE = {"$defs": {"node": {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string"},
    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
    "$ref": "#/$defs/node"}


def _string(pattern: str) -> dict[str, Any]:
    return {"type": "object", "required": ["s"],
            "properties": {"s": {"type": "string", "pattern": pattern}}}


# Real-world shapes that bounds used to refuse: (schema, a violating answer, a valid one,
# the keyword the violation fails on).
ADMITTED: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "recursive tree": (TREE, '{"name": "a", "children": [{"children": []}]}',
                       '{"name": "a", "children": [{"name": "b", "children": []}]}',
                       "required"),
    "500 properties": ({"type": "object", "required": ["p0", "p1", "p2"],
                        "properties": {f"p{i}": {"type": "string"} for i in range(500)}},
                       '{"p0": "x"}', '{"p0": "x", "p1": "y", "p2": "z"}', "required"),
    "URL pattern": (_string("^(https?)://[^\\s/$.?#].[^\\s]*$"), '{"s": "ftp:/x"}',
                    '{"s": "https://example.com/a"}', "pattern"),
    "semantic version pattern": (_string("^(\\d+\\.\\d+\\.\\d+.*)$"), '{"s": "1.2"}',
                                 '{"s": "1.2.3-beta"}', "pattern"),
    "nested-quantifier pattern": (_string("^(a+)+$"), '{"s": "aab"}', '{"s": "aaa"}',
                                  "pattern"),
    "50 levels": (_nested(50), '"flat"', "{}", "type"),
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


@pytest.mark.parametrize("name", list(ADMITTED))
async def test_real_world_shapes_are_admitted_classified_and_repaired_by_reask(
        client: httpx.AsyncClient, fake_engine: FakeEngine, name: str) -> None:
    schema, wrong, right, keyword = ADMITTED[name]
    fake_engine.enqueue(wrong)
    fake_engine.enqueue(right)
    body = {**_request(schema), "retry": {"strategies": ["reask"]}}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    verdict = response.json()["structured"]
    assert verdict["valid"] and verdict["attempts"] == 2
    [deviation] = verdict["deviations"]
    assert (deviation["kind"], deviation["keyword"]) == ("schema_violation", keyword)
    assert verdict["strategies"] == ["reask"]
    reask = fake_engine.requests[1]["messages"][-1]["content"]
    assert keyword in reask or "$" in reask


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
