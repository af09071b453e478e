"""Every field that asks the engine for structured decoding passes one gate.

``structured_outputs`` and the ``guided_*`` family get the bounds of ``response_format``
or a 400 that names the field; nothing out of bounds reaches the engine. What passes the
bounds reaches it only with a passing verdict of the compile check (a stand-in compiler
here, which refuses what does not parse).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.structured.grammars import grammar_specs
from tests.conftest import BASE_MODEL
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio

HOSTILE_SCHEMA = {"type": "string", "pattern": "(?<=a)b"}
NESTED: dict[str, Any] = {"type": "string"}
for _ in range(80):
    NESTED = {"type": "object", "properties": {"a": NESTED}}

# (field, value, the param the 400 names)
REFUSED: list[tuple[str, Any, str]] = [
    ("guided_json", HOSTILE_SCHEMA, "guided_json"),
    ("guided_json", NESTED, "guided_json"),
    ("guided_json", {"$ref": "https://example.invalid/s.json"}, "guided_json"),
    ("guided_json", '{"type": "stsring"}', "guided_json"),
    ("guided_json", "not json", "guided_json"),
    ("guided_regex", "a" * 70_000, "guided_regex"),
    ("guided_regex", 42, "guided_regex"),
    ("guided_choice", [f"c{i}" for i in range(20_000)], "guided_choice"),
    ("guided_choice", [], "guided_choice"),
    ("guided_choice", ["ok", 3], "guided_choice"),
    ("guided_grammar", 'root ::= "a"*', "guided_grammar"),
    ("guided_whitespace_pattern", 42, "guided_whitespace_pattern"),
    ("guided_decoding_backend", "x" * 500, "guided_decoding_backend"),
    ("structural_tag", '{"type": "structural_tag"}', "structural_tag"),
    ("structured_outputs", "json", "structured_outputs"),
    ("structured_outputs", {"json": HOSTILE_SCHEMA}, "structured_outputs.json"),
    ("structured_outputs", {"json": NESTED}, "structured_outputs.json"),
    ("structured_outputs", {"regex": "[a-"}, "structured_outputs.regex"),
    ("structured_outputs", {"choice": [f"c{i}" for i in range(20_000)]},
     "structured_outputs.choice"),
    ("structured_outputs", {"grammar": 'root ::= "a"'}, "structured_outputs.grammar"),
    ("structured_outputs", {"structural_tag": "{}"}, "structured_outputs.structural_tag"),
    ("structured_outputs", {"whitespace_pattern": ["x"]},
     "structured_outputs.whitespace_pattern"),
    ("structured_outputs", {"json_object": "yes"}, "structured_outputs.json_object"),
    ("structured_outputs", {"lark": "start: /a+/"}, "structured_outputs.lark"),
]


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}


def _completion(**fields: Any) -> dict[str, Any]:
    return {"model": BASE_MODEL, "prompt": "hi", **fields}


@pytest.mark.parametrize(("field", "value", "param"), REFUSED,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(REFUSED)])
@pytest.mark.parametrize("endpoint", ["chat", "completions"])
async def test_out_of_bounds_decoding_fields_are_refused(
    client: httpx.AsyncClient, fake_engine: FakeEngine, endpoint: str, field: str, value: Any,
    param: str,
) -> None:
    path, body = (("/v1/chat/completions", _chat(**{field: value})) if endpoint == "chat"
                  else ("/v1/completions", _completion(**{field: value})))
    response = await client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert fake_engine.requests == []


ACCEPTED: list[tuple[str, Any]] = [
    ("guided_json", {"type": "object", "properties": {"a": {"type": "integer"}}}),
    ("guided_json", '{"type": "object"}'),
    ("guided_regex", "[a-z]+(-[a-z]+)*"),
    ("guided_choice", ["billing", "technical"]),
    ("structured_outputs", {"json": {"type": "object"}, "disable_any_whitespace": True}),
    ("structured_outputs", {"choice": ["yes", "no"]}),
    ("structured_outputs", {"json_object": True}),
    # Once refused by a guess at what the engine's compiler would make of them; now
    # compiled by it first (under limits), and passed on when it takes them.
    ("guided_regex", "(a+)+$"),
    ("guided_json", {"type": "string", "pattern": "(a+)+$"}),
    ("structured_outputs", {"regex": "(.*)*x"}),
    ("guided_whitespace_pattern", "(\\s+)+x"),
]


@pytest.mark.parametrize(("field", "value"), ACCEPTED)
async def test_bounded_decoding_fields_reach_the_engine_unchanged_once_they_compile(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, field: str, value: Any
) -> None:
    response = await client.post("/v1/chat/completions", json=_chat(**{field: value}))
    assert response.status_code == 200, response.text
    (sent,) = fake_engine.requests
    assert sent[field] == value
    for spec in grammar_specs(sent, chat=True):
        verdict = app.state.grammars.verdict(spec)
        assert verdict is not None and verdict.compilable


async def test_response_format_on_completions_passes_the_same_bounds(
    client: httpx.AsyncClient, fake_engine: FakeEngine
) -> None:
    response_format = {"type": "json_schema",
                       "json_schema": {"name": "hostile", "schema": HOSTILE_SCHEMA}}
    response = await client.post("/v1/completions",
                                 json=_completion(response_format=response_format))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format.json_schema.schema"
    assert fake_engine.requests == []
