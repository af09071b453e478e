"""Sends the dataset through a gateway under each variant; one result line per answer.

Results go to ``results.jsonl`` in the output folder as they arrive, so an interrupted run
keeps what it has, and a rerun with the same files asks only what is missing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from gateway.evaluation.dataset import Item
from gateway.evaluation.variants import EvalPlan, Variant
from gateway.structured.deviations import classify
from gateway.structured.validation import CompiledSchema, ValidatorCache

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"


@dataclass
class Result:
    """What one request under one variant got."""

    key: str
    variant: str
    item: str
    repetition: int
    status: int
    latency_s: float
    valid: bool = False
    first_deviation: str | None = None
    deviations: list[str] = field(default_factory=list)
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answer: str | None = None
    exact: bool | None = None
    fields: dict[str, bool] | None = None
    tags: list[str] = field(default_factory=list)
    has_expected: bool = False
    error: str | None = None
    # The function the answer called (tool-call variants).
    call: str | None = None


def result_key(variant: str, item: str, repetition: int) -> str:
    return f"{variant}\t{item}\t{repetition}"


def load_results(out: Path) -> list[Result]:
    """The results written so far; a line cut off by an interruption is dropped (and redone)."""
    path = out / RESULTS
    if not path.exists():
        return []
    results = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            results.append(Result(**json.loads(line)))
        except (ValueError, TypeError):
            log.warning("%s:%d is incomplete (an interrupted run); it is asked again", path,
                        number)
    return results


async def run_eval(
    url: str, plan: EvalPlan, items: list[Item], out: Path, *, api_key: str | None = None,
    progress: bool = True,
) -> list[Result]:
    """Asks what ``out`` does not hold yet; returns every result, old and new."""
    out.mkdir(parents=True, exist_ok=True)
    kept = {r.key: r for r in load_results(out)}
    _rewrite(out, kept.values())  # drops a line an interruption cut off, before appending
    todo = [(v, item, rep) for v in plan.variants for rep in range(v.repetitions)
            for item in items if result_key(v.name, item.id, rep) not in kept]
    total = sum(v.repetitions for v in plan.variants) * len(items)
    cache = ValidatorCache()
    schemas = {v.name: cache.compile(plan.schema_of(v)) for v in plan.variants}
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    gate = asyncio.Semaphore(plan.concurrency)
    with (out / RESULTS).open("a", encoding="utf-8") as sink, tqdm(
        total=total, initial=total - len(todo), disable=not progress, unit="answer",
        desc="eval",
    ) as bar:
        async with httpx.AsyncClient(base_url=url, timeout=900, headers=headers) as client:

            async def one(variant: Variant, item: Item, repetition: int) -> None:
                async with gate:
                    result = await ask(client, plan, variant, item, repetition,
                                       schemas[variant.name])
                sink.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
                sink.flush()
                kept[result.key] = result
                bar.update()

            await asyncio.gather(*(one(*task) for task in todo))
    return list(kept.values())


def _rewrite(out: Path, results: Iterable[Result]) -> None:
    scratch = out / f".{RESULTS}.tmp"
    scratch.write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n"
                               for r in results), encoding="utf-8")
    scratch.replace(out / RESULTS)


def request_body(plan: EvalPlan, variant: Variant, item: Item, repetition: int
                 ) -> dict[str, Any]:
    """The chat request a variant sends for one item, exactly as an application would."""
    messages = list(item.messages)
    if variant.system_prompt is not None:
        messages = [{"role": "system", "content": variant.system_prompt},
                    *[m for m in messages if m["role"] != "system"]]
    body: dict[str, Any] = {"model": variant.model, "messages": messages,
                            "max_tokens": variant.max_tokens,
                            "temperature": variant.temperature}
    if variant.seed is not None:
        body["seed"] = variant.seed + repetition
    schema = plan.schema_of(variant)
    if variant.constrained:
        body["structured_outputs"] = {"json": schema}
        return body
    if not variant.retries:
        body["retry"] = {"max_attempts": 1}
    if variant.tool is not None:
        return {**body, **_tool_fields(variant, schema, item)}
    spec: dict[str, Any] = {"name": variant.schema_name}
    if not isinstance(variant.schema_, str):
        spec["schema"] = schema
    body["response_format"] = {"type": "json_schema", "json_schema": spec}
    return body


def _tool_fields(variant: Variant, schema: dict[str, Any], item: Item) -> dict[str, Any]:
    """The schema offered as one function (the item's own tools beside it), and the choice."""
    tool = {"type": "function", "function": {"name": variant.tool, "parameters": schema}}
    choice: Any = ({"type": "function", "function": {"name": variant.tool}}
                   if variant.tool_choice == "named" else variant.tool_choice)
    return {"tools": [tool, *item.tools], "tool_choice": choice}


async def ask(client: httpx.AsyncClient, plan: EvalPlan, variant: Variant, item: Item,
              repetition: int, schema: CompiledSchema) -> Result:
    result = Result(result_key(variant.name, item.id, repetition), variant.name, item.id,
                    repetition, 0, 0.0, tags=list(item.tags),
                    has_expected=item.expected is not None)
    started = time.perf_counter()
    try:
        response = await client.post("/v1/chat/completions",
                                     json=request_body(plan, variant, item, repetition))
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.latency_s = time.perf_counter() - started
    result.status = response.status_code
    payload = _json(response)
    if response.status_code == 200:
        _answered(result, payload, schema)
    elif response.status_code == 422 and isinstance(payload.get("error"), dict):
        _exhausted(result, payload["error"])
    else:
        error = payload.get("error")
        result.error = (error.get("message") if isinstance(error, dict) else None
                        ) or response.text[:500]
    _score(result, item.expected, _expected_call(variant, item))
    return result


def _expected_call(variant: Variant, item: Item) -> str | None:
    """The function a correct answer calls: the item's, else the variant's tool."""
    if item.expected_call is not None:
        return item.expected_call
    return variant.tool


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _answered(result: Result, payload: Mapping[str, Any], schema: CompiledSchema) -> None:
    choice = (payload.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    result.answer = message.get("content")
    calls = message.get("tool_calls") or []
    if calls and isinstance(calls[0], dict):
        # A call's arguments are the answer that is scored; its function is kept beside it.
        function = calls[0].get("function") or {}
        result.call, result.answer = function.get("name"), function.get("arguments")
    _usage(result, payload.get("usage"))
    verdict = payload.get("structured")
    if isinstance(verdict, dict):
        _verdict(result, verdict)
        return
    # Constrained by the engine, not checked by the gateway: checked here, the same way.
    checked = classify(result.answer, choice.get("finish_reason"), schema)
    result.valid, result.attempts = checked.valid, 1
    if checked.kind is not None:
        result.first_deviation = checked.kind.value
        result.deviations = [checked.kind.value]


def _exhausted(result: Result, error: Mapping[str, Any]) -> None:
    result.answer = error.get("last_answer")
    _usage(result, error.get("usage"))
    verdict = error.get("structured")
    if isinstance(verdict, dict):
        _verdict(result, verdict)


def _verdict(result: Result, verdict: Mapping[str, Any]) -> None:
    deviations = [d for d in verdict.get("deviations") or () if isinstance(d, dict)]
    result.valid = bool(verdict.get("valid"))
    result.attempts = int(verdict.get("attempts") or 0)
    result.deviations = [str(d.get("kind")) for d in deviations]
    first = [d for d in deviations if d.get("attempt") == 1]
    result.first_deviation = str(first[0].get("kind")) if first else None


def _usage(result: Result, usage: Any) -> None:
    if isinstance(usage, dict):
        result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        result.completion_tokens = int(usage.get("completion_tokens") or 0)


def _score(result: Result, expected: Mapping[str, Any] | None, call: str | None = None) -> None:
    """Exact match and per-field match against ``expected`` (the arguments of a call to
    ``call``, when one is expected): an answer that is not valid matches nothing (its
    failure is a format failure), nor does a call to another function."""
    if expected is None or result.error is not None:
        return
    try:
        answer = json.loads(result.answer or "") if result.valid else None
    except ValueError:
        answer = None
    if call is not None and result.call != call:
        answer = None
    if not isinstance(answer, dict):
        result.exact, result.fields = False, dict.fromkeys(expected, False)
        return
    result.fields = {name: answer.get(name) == value for name, value in expected.items()}
    result.exact = all(result.fields.values())

