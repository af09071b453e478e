"""A corpus of hostile inputs and engine faults, for the test suite and the benchmark.

Each case is one HTTP request to the gateway (in front of the fake engine), with what it
must get: a 4xx that says what is wrong, or, for inputs that are legitimate but costly
(long answers against tricky patterns), an answer in bounded time; for engine faults,
the exact status. ``prepare`` sets the stage first: answers the fake engine gives,
adapter folders in the store.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.adapter_factory import WEIGHTS_FILE, write_adapter
from tests.api.test_decoding_fields import REFUSED as SIDE_DOORS
from tests.fakes.engine import FakeEngine

MODEL = "base-model"
CHAT = "/v1/chat/completions"
CLIENT_ERRORS = frozenset(range(400, 500))

Prepare = Callable[[Path, Path, FakeEngine], Any]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # schema, regex, side door, answer, adapter, fault
    path: str
    body: dict[str, Any]
    expect: frozenset[int] = CLIENT_ERRORS
    prepare: Prepare | None = field(default=None, compare=False)


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16,
            **fields}


def _schema(schema: Any) -> dict[str, Any]:
    return _chat(response_format={"type": "json_schema",
                                  "json_schema": {"name": "hostile", "schema": schema}})


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def _pattern(pattern: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}


DRAFT4 = "http://json-schema.org/draft-04/schema#"
SCHEMAS: dict[str, Any] = {
    "misspelled type": {"type": "stsring"},
    "not an object": ["type", "string"],
    "look-behind": _pattern("(?<=a)b"),
    "back-reference": _pattern("(a)\\1"),
    "unbalanced pattern": _pattern("(a"),
    "huge repeat count": _pattern("a{99999999999}"),
    "100 levels": _nested(100),
    "20,000-value enum": {"enum": [f"v{i}" for i in range(20_000)]},
    "remote ref": {"$ref": "https://example.invalid/schema.json"},
    "file ref": {"$ref": "file:///etc/passwd"},
    "non-ASCII digit in a pointer": {"$defs": {"a": {"type": "string"}},
                                     "properties": {"x": {"$ref": "#/$defs/٣"}}},
    "unknown $schema": {"$schema": "http://example.invalid/schema#"},
    "2 MB schema": {"type": "object", "description": "x" * 2_000_000},
    "5,000 properties": {"type": "object",
                         "properties": {f"p{i}": {"type": "string"} for i in range(5000)}},
}
# Once refused by bounds that guessed at the engine's cost; now admitted, because
# validating them is linear: answered (or 422 after the retries), while the compile check
# keeps any grammar the engine could not compile in time away from it.
ADMITTED_SCHEMAS: dict[str, Any] = {
    "catastrophic pattern": _pattern("(a+)+$"),
    "overlapping alternatives": _pattern("(a|a)*$"),
    "adjacent repeats": _pattern("\\d+\\d+x"),
    "catastrophic patternProperties key": {"type": "object",
                                           "patternProperties": {"(x+)+y": {}}},
    "50 levels": _nested(50),
    "recursive ref": {"$defs": {"n": {"type": "object",
                                      "properties": {"n": {"$ref": "#/$defs/n"}}}},
                      "$ref": "#/$defs/n"},
    "draft-4 id scope": {"$schema": DRAFT4,
                         "properties": {"a": {"id": "http://x/y.json", "type": "string"}}},
    "2,000 properties": {"type": "object",
                         "properties": {f"p{i}": {"type": "string"} for i in range(2000)}},
}


def _answer(content: str) -> Prepare:
    def prepare(store: Path, outside: Path, fake: FakeEngine) -> None:
        fake.enqueue(content)
        fake.enqueue('{"s": "aaa"}')

    return prepare


# Legitimate schemas whose answers are costly to check: validated, in linear time.
ANSWERS: dict[str, tuple[Any, str]] = {
    "nested repeat, 50,000 characters": (_pattern("^((a+){1})+$"),
                                         '{"s": "' + "a" * 50_000 + '!"}'),
    "class outside ASCII, 50,000 characters": (_pattern("^([ğ]+){1}$"),
                                               '{"s": "' + "ğ" * 50_000 + 'x"}'),
    "deep document": ({"type": "array"}, "[" * 900 + "]" * 900),
}


class _Unpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _adapter(name: str, **kw: Any) -> Callable[[Path, Path, FakeEngine], str]:
    def prepare(store: Path, outside: Path, fake: FakeEngine) -> str:
        write_adapter(store / name, name=name, num_layers=30, **kw)
        return name

    return prepare


def _pickled(store: Path, outside: Path, fake: FakeEngine) -> None:
    folder = write_adapter(store / "pickled", name="pickled", num_layers=30)
    (folder / WEIGHTS_FILE).unlink()
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_Unpickled(outside / "unpickled")))


def _huge_header(store: Path, outside: Path, fake: FakeEngine) -> None:
    folder = write_adapter(store / "bigheader", name="bigheader", num_layers=30)
    (folder / WEIGHTS_FILE).write_bytes((2**62).to_bytes(8, "little") + b"{}")


def _outside(store: Path, outside: Path, fake: FakeEngine) -> None:
    write_adapter(outside / "escape", name="escape", num_layers=30)


def _symlink(store: Path, outside: Path, fake: FakeEngine) -> None:
    _outside(store, outside, fake)
    (store / "linked").symlink_to(outside / "escape", target_is_directory=True)


ADAPTERS: dict[str, tuple[str, Prepare]] = {
    "pickled weights": ("pickled", _pickled),
    "look-ahead target_modules": ("lookahead", _adapter("lookahead",
                                                        target_modules="(?=q)q_proj")),
    "catastrophic target_modules": ("nested", _adapter("nested", target_modules="(a+)+")),
    "slow-to-match exclude_modules": ("exclude", _adapter("exclude",
                                                          exclude_modules="((.+){1})+x",
                                                          target_modules="q_proj|x")),
    "catastrophic rank_pattern key": ("rankpat", _adapter("rankpat",
                                                          rank_pattern={"(.*)*x": 4})),
    "rank above the engine's": ("huge", _adapter("huge", rank=64)),
    "header length of 2**62": ("bigheader", _huge_header),
    "dot-dot path": ("../outside/escape", _outside),
    "symlink out of the store": ("linked", _symlink),
    "url": ("https://example.invalid/lora", lambda s, o, f: None),
    "very long path": ("a/" * 2000, lambda s, o, f: None),
}


def _fault(status: int, headers: dict[str, str] | None = None) -> Prepare:
    def prepare(store: Path, outside: Path, fake: FakeEngine) -> None:
        fake.enqueue("engine fault", status=status, headers=headers or {})

    return prepare


FAULTS: dict[str, tuple[Prepare, frozenset[int]]] = {
    "engine 503": (_fault(503, {"retry-after": "2"}), frozenset({503})),
    "engine 429": (_fault(429, {"retry-after": "2"}), frozenset({429})),
    "engine 500": (_fault(500), frozenset({502})),
    "engine 400": (_fault(400), frozenset({400})),
}


def corpus() -> list[Case]:
    """Every case, in a fixed order."""
    cases = [Case(f"schema: {n}", "schema", CHAT, _schema(s)) for n, s in SCHEMAS.items()]
    # One constrained retry each (its grammar goes through the compile check), so that they
    # leave the retry budget to the cases after them.
    cases += [Case(f"admitted schema: {n}", "admitted schema", CHAT,
                   {**_schema(s), "retry": {"max_attempts": 2, "strategies": ["constrained"]}},
                   frozenset({200, 422})) for n, s in ADMITTED_SCHEMAS.items()]
    cases += [Case(f"side door: {field_name} #{i}", "side door", CHAT, _chat(**{field_name: v}))
              for i, (field_name, v, _) in enumerate(SIDE_DOORS)]
    cases += [Case(f"answer: {n}", "answer", CHAT, _schema(s), frozenset({200, 422}),
                   _answer(a)) for n, (s, a) in ANSWERS.items()]
    cases += [Case(f"adapter: {n}", "adapter", "/v1/adapters", {"path": p}, prepare=prep)
              for n, (p, prep) in ADAPTERS.items()]
    cases += [Case(f"fault: {n}", "fault", CHAT, _chat(), expect, prep)
              for n, (prep, expect) in FAULTS.items()]
    return cases


@dataclass
class Outcome:
    case: Case
    status: int
    seconds: float

    @property
    def as_expected(self) -> bool:
        return self.status in self.case.expect


@dataclass
class Run:
    outcomes: list[Outcome]
    health_seconds: list[float]

    @property
    def unexpected(self) -> dict[str, int]:
        return {o.case.name: o.status for o in self.outcomes if not o.as_expected}


async def run_corpus(url: str, fake: FakeEngine, store: Path, outside: Path,
                     cases: list[Case] | None = None) -> Run:
    """Sends every case in turn, each with a ``/health`` probe sent while it is handled."""
    import asyncio
    import time

    import httpx

    health: list[float] = []

    async def timed(client: httpx.AsyncClient, method: str, path: str,
                    body: dict[str, Any] | None = None) -> tuple[int, float]:
        started = time.perf_counter()
        answer = await client.request(method, path, json=body)
        return answer.status_code, time.perf_counter() - started

    async def probe(prober: httpx.AsyncClient) -> tuple[int, float]:
        await asyncio.sleep(0.001)  # once the case's request is on its way
        return await timed(prober, "GET", "/health")

    outcomes = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client, \
            httpx.AsyncClient(base_url=url, timeout=60) as prober:
        for case in cases or corpus():
            if case.prepare is not None:
                case.prepare(store, outside, fake)
            (status, seconds), (health_status, health_seconds) = await asyncio.gather(
                timed(client, "POST", case.path, case.body), probe(prober))
            assert health_status == 200
            outcomes.append(Outcome(case, status, seconds))
            health.append(health_seconds)
    return Run(outcomes, health)
