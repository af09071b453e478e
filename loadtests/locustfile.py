"""Load test for the gateway: plain chat, streaming chat and schema-validated tickets.

    .venv/bin/locust -f loadtests/locustfile.py --headless -u 16 -r 4 -t 60s \
        --host http://127.0.0.1:8000

Environment: GATEWAY_MODEL (default SmolLM2-135M-Instruct), GATEWAY_ADAPTER (an adapter
to spread load over, optional), GATEWAY_API_KEY (when keys are configured).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from locust import HttpUser, between, task

MODEL = os.environ.get("GATEWAY_MODEL", "SmolLM2-135M-Instruct")
ADAPTER = os.environ.get("GATEWAY_ADAPTER")
KEY = os.environ.get("GATEWAY_API_KEY")

TICKETS = [
    "I was charged twice for my subscription this month.",
    "The app crashes every time I open the settings page.",
    "How do I change the email address on my account?",
    "Our whole team cannot log in since this morning, this is urgent!",
    "Can I get an invoice with our VAT number on it?",
]


def _headers() -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}"} if KEY else {}


def _model() -> str:
    return random.choice([MODEL, ADAPTER]) if ADAPTER else MODEL


class GatewayUser(HttpUser):
    wait_time = between(0.1, 0.5)

    @task(3)
    def chat(self) -> None:
        body = {"model": _model(), "max_tokens": 32,
                "messages": [{"role": "user", "content": random.choice(TICKETS)}]}
        self.client.post("/v1/chat/completions", json=body, headers=_headers(), name="chat")

    @task(2)
    def stream(self) -> None:
        body = {"model": _model(), "max_tokens": 32, "stream": True,
                "messages": [{"role": "user", "content": random.choice(TICKETS)}]}
        with self.client.post("/v1/chat/completions", json=body, headers=_headers(),
                              name="chat stream", stream=True, catch_response=True) as response:
            lines = [line for line in response.iter_lines() if line]
            if not lines or lines[-1] != b"data: [DONE]":
                response.failure("stream ended without [DONE]")

    @task(2)
    def ticket(self) -> None:
        body: dict[str, Any] = {
            "model": _model(), "max_tokens": 64,
            "messages": [{"role": "user", "content": random.choice(TICKETS)}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "ticket"}},
        }
        with self.client.post("/v1/chat/completions", json=body, headers=_headers(),
                              name="ticket (schema)", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            content = response.json()["choices"][0]["message"]["content"]
            try:
                json.loads(content)
            except ValueError:
                response.failure("answer is not JSON")
