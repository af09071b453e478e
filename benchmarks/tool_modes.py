"""How the engine answers tool calls on a served model, mode by mode (the measurement behind
the gateway's own constrained tool calls; figures in docs/tools.md).

For each ticket of a JSONL file, asks for the ``route_ticket`` call in four ways straight at
a vLLM server (no gateway): ``auto``; the engine's own ``required`` and named grammars; and
the gateway's constrained form (``tool_choice: none`` and a whitespace-bounded JSON grammar
for ``{"name", "arguments"}``). Each answer is checked as the gateway checks it, and the
tally printed side by side::

    python -m benchmarks.tool_modes --url http://127.0.0.1:8011 --model SmolLM2-135M-Instruct
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from gateway.structured.attempts import Answer
from gateway.structured.contract import ToolContract
from gateway.structured.deviations import DeviationKind, Verdict
from gateway.structured.retry import Strategy
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.tools import parse_tools
from gateway.structured.validation import ValidatorCache

ROOT = Path(__file__).resolve().parents[1]
TICKET = json.loads((ROOT / "config" / "schemas" / "ticket.json").read_text())
TOOLS = [{"type": "function", "function": {
    "name": "route_ticket", "description": "Route a support ticket.", "parameters": TICKET}}]
NAMED = {"type": "function", "function": {"name": "route_ticket"}}
MODES: dict[str, Any] = {"auto": "auto", "engine required": "required",
                         "engine named": NAMED, "gateway constrained": "constrained"}


def _body(model: str, ticket: str, mode: str, contract: ToolContract) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model, "max_tokens": 120, "temperature": 0, "tools": TOOLS,
        "messages": [{"role": "user", "content": f"Route this ticket: {ticket}"}]}
    if MODES[mode] != "constrained":
        return {**body, "tool_choice": MODES[mode]}
    no_call = Verdict(valid=False, kind=DeviationKind.TOOL_CALL_MISSING)
    return contract.retry_body(Strategy.CONSTRAINED, body, Answer(None, "stop", None, {}),
                               no_call, chat=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8011")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "tickets" / "test.jsonl")
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    cache = ValidatorCache()
    tools = parse_tools({"tools": TOOLS, "tool_choice": NAMED}, SchemaRegistry({}), cache)
    assert tools is not None
    contract = ToolContract(tools)
    tickets = [json.loads(line)["input"] for line in args.data.read_text().splitlines()
               if line.strip()][: args.limit]
    print(f"{len(tickets)} tickets from {args.data.name}, model {args.model}")
    with httpx.Client(base_url=args.url, timeout=300) as http:
        for mode in MODES:
            kinds: Counter[str] = Counter()
            started = time.perf_counter()
            tokens = 0
            for ticket in tickets:
                response = http.post("/v1/chat/completions",
                                     json=_body(args.model, ticket, mode, contract))
                if response.status_code != 200:
                    kinds[f"HTTP {response.status_code}"] += 1
                    continue
                data = response.json()
                tokens += data["usage"]["completion_tokens"]
                strategy = Strategy.CONSTRAINED if mode == "gateway constrained" else None
                verdict = contract.check(Answer.of(data, chat=True), strategy)
                kinds["valid" if verdict.valid else str(verdict.kind)] += 1
            seconds = time.perf_counter() - started
            print(f"{mode:20} {dict(kinds)}  {tokens / len(tickets):.0f} tokens/answer  "
                  f"{seconds / len(tickets):.2f} s/answer")


if __name__ == "__main__":
    main()
