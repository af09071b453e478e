"""The compile check: grammars compiled first in a worker process, under a time and memory
limit, and no grammar reaches the engine without a cached passing verdict.

The worker runs a stand-in compiler (tests/fakes/grammar.py) that hangs or grows without
end on cue, as vLLM's compiler did on some real schemas; the gateway kills it at the limit.
The real compiler (xgrammar with the bundled model's tokenizer) is driven by the
integration tier and by benchmarks/schema_corpus.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.grammar.checker import MAX_QUEUED, GrammarChecker
from gateway.grammar.settings import GrammarCheckSettings
from gateway.structured.constrained import constrained_fields
from gateway.structured.grammars import GrammarSpec, grammar_specs
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.fakes.grammar import BALLOON, HANG, REFERENCE, REFUSE
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.anyio

LIMIT_S = 1.0
MEMORY_MIB = 256
CHECK = {"time_limit_s": LIMIT_S, "memory_limit_mib": MEMORY_MIB}


def ticket(marker: str = "") -> dict[str, Any]:
    return {"type": "object", "required": ["category"], "description": marker,
            "properties": {"category": {"type": "string", "enum": ["billing", "bug"]}}}


def spec(schema: dict[str, Any]) -> GrammarSpec:
    """The grammar of a constrained retry on ``schema``."""
    [found] = grammar_specs(constrained_fields(schema), chat=True)
    return found


def checker(**settings: Any) -> GrammarChecker:
    return GrammarChecker(GrammarCheckSettings(**{"compiler": REFERENCE, **CHECK, **settings}),
                          tokenizer=None)


async def test_a_verdict_is_made_once_and_cached() -> None:
    check = checker()
    try:
        grammar = spec(ticket())
        waiters = [check.wait(grammar, 60) for _ in range(5)]
        verdicts = await asyncio.gather(*waiters)
        assert all(v is not None and v.compilable for v in verdicts)
        assert check.compiles == 1
        assert await check.wait(grammar, 60) == verdicts[0]
        assert check.compiles == 1
        assert check.verdict(grammar) == verdicts[0]
    finally:
        await check.aclose()


@pytest.mark.parametrize(("marker", "reason"), [
    (HANG, f"grammar compile exceeded {LIMIT_S:g} s"),
    (BALLOON, f"grammar compile exceeded {MEMORY_MIB} MiB of memory"),
    (REFUSE, "the engine's compiler refuses it: the stand-in compiler refuses this grammar"),
])
async def test_a_compile_that_breaks_a_limit_is_stopped_and_judged(marker: str,
                                                                   reason: str) -> None:
    # Growing to the memory limit may take longer than the time limit on a busy machine.
    check = checker(time_limit_s=60) if marker == BALLOON else checker()
    try:
        verdict = await check.wait(spec(ticket(marker)), 60)
        assert verdict is not None and not verdict.compilable
        assert verdict.reason == reason
        assert verdict.describe() == f"unavailable: {reason}"
        # The worker was replaced where it had to be killed; the next grammar compiles.
        after = await check.wait(spec(ticket("next")), 60)
        assert after is not None and after.compilable
    finally:
        await check.aclose()


async def test_a_worker_killed_from_outside_is_replaced() -> None:
    check = checker()
    try:
        first = await check.wait(spec(ticket("first")), 60)
        assert first is not None and first.compilable
        pid = check.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        after = await check.wait(spec(ticket("after")), 60)
        assert after is not None and after.compilable and not after.transient
        assert check.worker_starts == 2
    finally:
        await check.aclose()


async def test_a_worker_that_cannot_start_says_why_and_is_tried_again_later() -> None:
    check = checker(compiler="xgrammar")  # no tokenizer: the worker cannot start
    try:
        verdict = await check.wait(spec(ticket()), 60)
        assert verdict is not None and not verdict.compilable
        assert "structured.grammar_check.tokenizer" in (verdict.reason or "")
        assert check.verdict(spec(ticket())) is None  # not cached: a later start may pass
    finally:
        await check.aclose()


@pytest.fixture
async def gateway(make_settings: SettingsFactory) -> Any:
    app = create_app(make_settings(structured={"grammar_check": CHECK}))
    async for client in start(app):
        yield app, client


def chat(schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": BASE_MODEL, "messages": [{"role": "user", "content": "route: refund"}],
            "max_tokens": 32, "response_format": {
                "type": "json_schema", "json_schema": {"name": "ticket", "schema": schema}},
            **extra}


def sent_grammars(fake: FakeEngine) -> list[GrammarSpec]:
    return [s for body in fake.requests for s in grammar_specs(body, chat="messages" in body)]


async def test_an_unconstrainable_schema_is_answered_by_reask_and_its_grammar_never_sent(
    gateway: tuple[FastAPI, httpx.AsyncClient], fake_engine: FakeEngine
) -> None:
    app, client = gateway
    schema = ticket(HANG)
    for _ in range(2):
        fake_engine.enqueue("It is a billing question.")
        fake_engine.enqueue('{"category": "billing"}')
    health: list[float] = []

    async def probe_while(task: asyncio.Task[httpx.Response]) -> None:
        while not task.done():
            started = time.perf_counter()
            assert (await client.get("/health")).status_code == 200
            health.append(time.perf_counter() - started)
            await asyncio.sleep(0)

    request = asyncio.create_task(client.post("/v1/chat/completions", json=chat(schema)))
    await probe_while(request)
    response = request.result()
    assert response.status_code == 200, response.text
    verdict = response.json()["structured"]
    assert verdict["valid"] and verdict["strategies"] == ["reask"]
    assert verdict["constrained"].startswith("unavailable: ")
    # A loop that waited on the compile would stall a probe for the whole limit (1 s); a
    # busy machine delays probes by far less.
    assert health and max(health) < LIMIT_S
    assert sent_grammars(fake_engine) == []
    # The verdict is cached: the next request skips the constrained retry at once.
    made = await app.state.grammars.wait(spec(schema), 60)
    assert made is not None and made.reason == f"grammar compile exceeded {LIMIT_S:g} s"
    compiles = app.state.grammars.compiles
    again = await client.post("/v1/chat/completions", json=chat(schema))
    assert again.json()["structured"]["constrained"] == made.describe()
    assert app.state.grammars.compiles == compiles
    assert sent_grammars(fake_engine) == []
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_grammar_verdicts_total", kind="structural_tag",
                 constrainable="false") == 1


async def test_a_compilable_schema_is_constrained_after_its_verdict(
    gateway: tuple[FastAPI, httpx.AsyncClient], fake_engine: FakeEngine
) -> None:
    app, client = gateway
    fake_engine.enqueue("It is a billing question.")
    fake_engine.enqueue('{"category": "billing"}')
    response = await client.post("/v1/chat/completions", json=chat(ticket()))
    verdict = response.json()["structured"]
    assert verdict["strategies"] == ["constrained"] and "constrained" not in verdict
    [sent] = sent_grammars(fake_engine)
    made = app.state.grammars.verdict(sent)
    assert made is not None and made.compilable


async def test_a_side_door_grammar_that_fails_the_check_is_a_400_before_the_engine(
    gateway: tuple[FastAPI, httpx.AsyncClient], fake_engine: FakeEngine
) -> None:
    _, client = gateway
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}],
            "structured_outputs": {"json": ticket(BALLOON)}}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "grammar_unavailable"
    assert error["param"] == "structured_outputs.json"
    # Its memory limit, or on a busy machine perhaps its time limit first.
    assert "grammar compile exceeded" in error["message"]
    assert fake_engine.requests == []


async def test_no_grammar_reaches_the_engine_without_a_cached_passing_verdict(
    gateway: tuple[FastAPI, httpx.AsyncClient], fake_engine: FakeEngine, tmp_path: Path
) -> None:
    """The spying fake engine keeps every body it got: mixed traffic, then each grammar in
    each of them is looked up in the verdict cache."""
    app, client = gateway
    tools: list[dict[str, Any]] = [
        {"type": "function", "function": {"name": name, "parameters": ticket(marker)}}
             for name, marker in (("route", ""), ("stall", HANG))]
    traffic: list[tuple[str, dict[str, Any]]] = [
        ("/v1/chat/completions", chat(ticket())),
        ("/v1/chat/completions", chat(ticket(HANG))),
        ("/v1/chat/completions", chat(ticket(REFUSE))),
        ("/v1/completions", {"model": BASE_MODEL, "prompt": "route: refund", "max_tokens": 16,
                             "response_format": chat(ticket("completions"))["response_format"]}),
        ("/v1/chat/completions", {**chat(ticket()), "response_format": {"type": "json_object"}}),
        ("/v1/chat/completions", {"model": BASE_MODEL, "n": 2, "tools": tools[:1],
                                  "tool_choice": "required",
                                  "messages": [{"role": "user", "content": "route it"}]}),
        ("/v1/chat/completions", {"model": BASE_MODEL, "n": 2, "tools": tools,
                                  "tool_choice": {"type": "function",
                                                  "function": {"name": "route"}},
                                  "messages": [{"role": "user", "content": "route it"}]}),
        ("/v1/chat/completions", {"model": BASE_MODEL, "tools": tools[1:],
                                  "messages": [{"role": "user", "content": "route it"}]}),
        ("/v1/chat/completions", {"model": BASE_MODEL, "guided_regex": "(a+)+$",
                                  "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"model": BASE_MODEL,
                                  "structured_outputs": {"json": ticket(HANG)},
                                  "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"model": BASE_MODEL, "n": 2, "tools": [
            {**tools[1], "function": {**tools[1]["function"], "strict": True}}],
            "messages": [{"role": "user", "content": "route it"}]}),
        ("/v1/responses", {"model": BASE_MODEL, "input": "route: refund", "text": {
            "format": {"type": "json_schema", "name": "t", "schema": ticket("responses")}}}),
    ]
    statuses = []
    for path, body in traffic:
        statuses.append((await client.post(path, json=body)).status_code)
    assert 400 in statuses and 200 in statuses
    sent = sent_grammars(fake_engine)
    assert len(sent) >= 4  # constrained retries, json_object, tool_choice, side door
    for grammar in sent:
        verdict = app.state.grammars.verdict(grammar)
        assert verdict is not None and verdict.compilable, (grammar.param, verdict)
    assert not any(HANG in g.text or REFUSE in g.text for g in sent)
    # vLLM compiles the parameters of a strict tool into a grammar of its own making, even
    # under tool_choice auto: no tool reaches it strict.
    assert not any("strict" in json.dumps(body.get("tools", [])) for body in fake_engine.requests)


async def test_strict_tools_reach_the_engine_without_strict_and_their_calls_are_checked(
    gateway: tuple[FastAPI, httpx.AsyncClient], fake_engine: FakeEngine
) -> None:
    _, client = gateway
    tool = {"type": "function", "function": {"name": "route", "strict": True,
                                             "parameters": ticket(HANG)}}
    fake_engine.enqueue("", tool_calls=[("route", '{"category": "refund"}')])
    fake_engine.enqueue("", tool_calls=[("route", '{"category": "billing"}')])
    body = {"model": BASE_MODEL, "tools": [tool], "retry": {"strategies": ["reask"]},
            "messages": [{"role": "user", "content": "route: refund"}]}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    report = response.json()["structured"]
    assert report["valid"] and report["deviations"][0]["kind"].startswith("tool_arguments")
    for sent in fake_engine.requests:
        [function] = [t["function"] for t in sent["tools"]]
        assert "strict" not in function and function["parameters"] == ticket(HANG)


async def test_the_queue_of_grammars_is_bounded_and_stopping_answers_every_waiter() -> None:
    check = checker()
    try:
        queued = [spec(ticket(f"{HANG} {i}")) for i in range(MAX_QUEUED + 8)]
        check.prefetch(queued)
        waiters = [asyncio.ensure_future(check.wait(s, 600)) for s in queued[:MAX_QUEUED]]
        busy = await check.wait(spec(ticket("one more")), 600)
        assert busy is not None and busy.transient and "busy" in (busy.reason or "")
        assert check.verdict(spec(ticket("one more"))) is None  # never cached
    finally:
        await check.aclose()
    verdicts = await asyncio.gather(*waiters)
    assert all(v is not None and v.transient for v in verdicts[1:])
