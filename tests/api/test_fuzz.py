"""Fuzzing: no input makes the gateway answer 5xx.

schemathesis generates requests for every operation of the gateway's own OpenAPI schema
(served over real HTTP, in front of the fake engine); hypothesis builds JSON Schemas from
the keywords clients send. Either is answered (2xx, or a 4xx that says what is wrong),
never with a server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.config import Settings
from gateway.structured.deviations import classify
from gateway.structured.errors import SchemaRejected
from gateway.structured.validation import ValidatorCache
from gateway.wiring.store import BUNDLED_BASE_CONFIG
from tests.fakes.engine import FakeEngine
from tests.servers import serving

MODEL = "base-model"
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@contextlib.contextmanager
def _gateway_in_a_thread(tmp: Path) -> Iterator[str]:
    """The gateway and the fake engine on loopback, served by a loop of their own."""
    found: dict[str, str] = {}
    up, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        fake = FakeEngine(base_model=MODEL)
        async with serving(fake.app) as engine_url:
            settings = Settings.model_validate({
                "engine": {"mode": "remote", "urls": [engine_url], "model": MODEL},
                "adapters": {"roots": [str(tmp / "adapters")], "watch": False,
                             "staging_dir": str(tmp / "staging"),
                             "rollouts_file": str(tmp / "rollouts.json"),
                             "base_model_config": str(BUNDLED_BASE_CONFIG)},
                "responses": {"store_file": str(tmp / "responses.sqlite3")}})
            async with serving(create_app(settings)) as url:
                found["url"] = url
                up.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert up.wait(60), "the gateway did not start"
    try:
        url = found["url"]
        for _ in range(600):  # until the store is loaded and the engine answers
            if httpx.get(f"{url}/ready").status_code == 200:
                break
            stop.wait(0.05)
        yield url
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _gateway_in_a_thread(tmp_path_factory.mktemp("fuzz")) as url:
        yield url


def test_no_request_gets_a_server_error(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    # An operation schemathesis cannot read raises here (Err.ok()), failing the test.
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # inference, models, adapters, health, metrics
    for operation in operations:
        _fuzz(operation, gateway_url)


def _fuzz(operation: Any, url: str) -> None:
    """Every generated request to one operation is answered below 500."""

    @FUZZ
    @given(case=operation.as_strategy())
    def call(case: Any) -> None:
        response = case.call(base_url=url, timeout=30)
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])

    call()


# JSON Schemas built from the keywords clients use, with hostile values among them.
# JSON has no NaN nor infinity: a client cannot send them.
_floats = st.floats(allow_nan=False, allow_infinity=False)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), _floats,
                     st.text(max_size=20))
_patterns = st.sampled_from(["^[a-z]+$", "(a+)+$", "((a+){1})+", "[", "a{99999999999}",
                             "(?<=a)b", "\\d+\\d+x", "^.*$", "٣+", "\\p{L}+"])
_types = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null",
                          "stsring", 7])
_refs = st.sampled_from(["#", "#/$defs/a", "#/properties/٣", "#/items/0", "http://x/s.json",
                         "#anchor", "#/$defs/%ZZ", "other.json#/a"])


def _schemas(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={
        "type": _types, "pattern": _patterns, "format": st.sampled_from(
            ["regex", "date-time", "email", "uri", "uuid", "ipv4", "bogus"]),
        "enum": st.lists(_scalars, max_size=5), "const": _scalars,
        "properties": st.dictionaries(st.text(max_size=8), children, max_size=3),
        "patternProperties": st.dictionaries(_patterns, children, max_size=2),
        "items": children, "required": st.lists(st.text(max_size=8), max_size=3),
        "additionalProperties": st.one_of(st.booleans(), children),
        "anyOf": st.lists(children, max_size=2), "oneOf": st.lists(children, max_size=2),
        "$ref": _refs, "$defs": st.dictionaries(st.sampled_from(["a", "b"]), children,
                                                max_size=2),
        "$id": st.sampled_from(["#x", "http://x/y"]), "id": st.sampled_from(["http://x/y"]),
        "$schema": st.sampled_from(["http://json-schema.org/draft-04/schema#",
                                    "https://json-schema.org/draft/2020-12/schema", "nope"]),
        "minLength": st.integers(-5, 2**65), "maxItems": st.integers(-5, 2**65),
        "multipleOf": st.one_of(st.integers(-2, 3), _floats),
        "uniqueItems": st.booleans(),
    })


SCHEMAS = st.recursive(_schemas(st.just({})), _schemas, max_leaves=6)
ANSWERS = st.one_of(st.text(max_size=200), st.sampled_from(
    ['{"a": 1}', "[" * 500, '{"x": "' + "a" * 2000 + '!"}', "```json\n{}\n```", "null"]))


@FUZZ
@given(schema=SCHEMAS, answer=ANSWERS)
def test_any_schema_is_compiled_or_refused_and_any_answer_classified(
    schema: dict[str, Any], answer: str
) -> None:
    cache = ValidatorCache()
    try:
        compiled = cache.compile(schema)
    except SchemaRejected:
        return
    verdict = classify(answer, "stop", compiled)
    assert verdict.valid or verdict.kind is not None


@FUZZ
@given(schema=SCHEMAS)
def test_any_schema_through_the_api_is_answered_without_a_server_error(
    gateway_url: str, schema: dict[str, Any]
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "fuzz", "schema": schema}}}
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code < 500, (schema, response.text[:500])
