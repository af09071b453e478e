"""Load test for the gateway: the traffic mixes a team sees in production.

Run it through the runner, which starts the setup, bounds the run and checks thresholds::

    .venv/bin/python -m loadtests.run --users 8 --duration 60s

or with locust itself against a running gateway::

    LOADTEST_CONFIG=loadtests/config.yaml .venv/bin/locust -f loadtests/locustfile.py \\
        --headless -u 8 -r 4 -t 60s --host http://127.0.0.1:8000

User classes (weights in the config file, ``weights``):

``ChatUser``     plain chat on the base model.
``StreamUser``   streamed chat; time to first token (``TTFT``) and the gaps between tokens
                 (``ITL``) are locust entries of their own.
``TicketUser``   structured ticket routing through an adapter with its schema; each answer's
                 verdict is a ``VERDICT`` entry: ``valid``, ``recovered`` or ``exhausted``.
``MixedUser``    chat spread over the base model and every configured adapter.
``SwapClient``   chat to the hot-swapped adapter while ``Operator`` (one user) loads a new
                 version of it every few seconds; neither may see a failure.

Environment: ``LOADTEST_CONFIG`` (default ``loadtests/config.yaml``), ``GATEWAY_API_KEY``
(clients) and ``GATEWAY_ADMIN_KEY`` (the operator) when the gateway has keys.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import yaml
from locust import HttpUser, between, constant, events, task

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load(
    Path(os.environ.get("LOADTEST_CONFIG", ROOT / "loadtests" / "config.yaml")).read_text()
) or {}
KEY = os.environ.get("GATEWAY_API_KEY")
ADMIN_KEY = os.environ.get("GATEWAY_ADMIN_KEY") or KEY
MODEL: str = CONFIG.get("model", "SmolLM2-135M-Instruct")
ADAPTERS: list[str] = list(CONFIG.get("adapters") or [])
STRUCTURED: dict[str, str] = CONFIG.get("structured") or {}
MAX_TOKENS = int(CONFIG.get("max_tokens", 48))
WEIGHTS: dict[str, int] = {"chat": 3, "stream": 2, "ticket": 3, "mixed": 2, "swap": 3,
                           **(CONFIG.get("weights") or {})}
HOT_SWAP: dict[str, Any] | None = CONFIG.get("hot_swap")
COMPLETIONS = "/v1/chat/completions"
# Where every request's outcome is written when locust quits (the runner reads it):
# locust's CSV is written on an interval and its aggregate mixes in the TTFT, ITL and
# VERDICT entries, so the runner computes its figures from these samples instead.
SAMPLES = os.environ.get("LOADTEST_SAMPLES")
_samples: list[tuple[float, str, str, float, bool]] = []


@events.request.add_listener  # type: ignore[untyped-decorator]
def _keep(request_type: str, name: str, response_time: float, exception: Any,
          **_: Any) -> None:
    _samples.append((time.time(), request_type, name, response_time, exception is not None))


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _write_samples(**_: Any) -> None:
    if SAMPLES:
        Path(SAMPLES).write_text(json.dumps(_samples))


def _prompts() -> list[str]:
    path = ROOT / CONFIG.get("dataset", "data/tickets/test.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    prompts = [str(line["input"]) for line in lines if line.get("input")]
    if not prompts:
        raise SystemExit(f"{path}: no prompts (lines with an 'input' field)")
    return prompts


PROMPTS = _prompts()


def _headers(key: str | None = KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": random.choice(PROMPTS)}], **extra}


def _record(kind: str, name: str, milliseconds: float) -> None:
    """A locust entry of its own (TTFT, ITL, VERDICT) beside the HTTP requests."""
    events.request.fire(  # type: ignore[no-untyped-call]
        request_type=kind, name=name, response_time=milliseconds, response_length=0,
        exception=None, context={})


class _GatewayUser(HttpUser):
    abstract = True
    wait_time = between(0.05, 0.2)

    def _post_chat(self, model: str, name: str) -> None:
        self.client.post(COMPLETIONS, json=_chat(model), headers=_headers(), name=name)


class ChatUser(_GatewayUser):
    weight = WEIGHTS["chat"]
    abstract = weight == 0

    @task
    def chat(self) -> None:
        self._post_chat(MODEL, "chat")


class StreamUser(_GatewayUser):
    weight = WEIGHTS["stream"]
    abstract = weight == 0

    @task
    def stream(self) -> None:
        started = time.perf_counter()
        last: float | None = None
        with self.client.post(COMPLETIONS, json=_chat(MODEL, stream=True), headers=_headers(),
                              name="chat stream", stream=True, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return
            done = False
            for line in response.iter_lines():
                if line == b"data: [DONE]":
                    done = True
                    continue
                if not line.startswith(b"data: ") or b'"content"' not in line:
                    continue
                now = time.perf_counter()
                if last is None:
                    _record("TTFT", "chat stream", (now - started) * 1000)
                else:
                    _record("ITL", "chat stream", (now - last) * 1000)
                last = now
            if not done:
                response.failure("the stream ended without [DONE]")


class TicketUser(_GatewayUser):
    weight = WEIGHTS["ticket"] if STRUCTURED else 0
    abstract = weight == 0

    @task
    def ticket(self) -> None:
        body = _chat(STRUCTURED.get("model", MODEL), response_format={
            "type": "json_schema", "json_schema": {"name": STRUCTURED.get("schema", "ticket")}})
        with self.client.post(COMPLETIONS, json=body, headers=_headers(),
                              name="ticket (structured)", catch_response=True) as response:
            if response.status_code == 422:
                # Every attempt deviated: the gateway said so, as it should. Counted as
                # exhausted (its own threshold), not as a failed request.
                _record("VERDICT", "exhausted", 0)
                response.success()
                return
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            report = response.json().get("structured") or {}
            if not report.get("valid"):
                response.failure("the gateway returned an answer it did not find valid")
                return
            _record("VERDICT", "recovered" if report.get("deviations") else "valid", 0)


class MixedUser(_GatewayUser):
    weight = WEIGHTS["mixed"] if ADAPTERS else 0
    abstract = weight == 0

    @task
    def mixed(self) -> None:
        model = random.choice([MODEL, *ADAPTERS])
        self._post_chat(model, f"mixed: {model}")


class SwapClient(_GatewayUser):
    """Clients of the adapter that is hot-swapped under them."""

    weight = WEIGHTS["swap"] if HOT_SWAP else 0
    abstract = weight == 0

    @task
    def swapped(self) -> None:
        assert HOT_SWAP is not None
        self._post_chat(HOT_SWAP["name"], "hot-swapped adapter")


class Operator(HttpUser):
    """Publishes a new version of the hot-swapped adapter every few seconds."""

    fixed_count = 1 if HOT_SWAP else 0
    abstract = HOT_SWAP is None
    wait_time = constant(float((HOT_SWAP or {}).get("every_s", 3)))
    turn = 0

    @task
    def publish(self) -> None:
        assert HOT_SWAP is not None
        folders = HOT_SWAP["folders"]
        Operator.turn += 1
        body = {"path": folders[Operator.turn % len(folders)], "name": HOT_SWAP["name"],
                "replace": True}
        self.client.post("/v1/adapters", json=body, headers=_headers(ADMIN_KEY),
                         name="hot swap (admin load)")
