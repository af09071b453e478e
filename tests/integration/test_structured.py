"""The base model asked for the ticket JSON deviates; the gateway still returns valid JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.integration.conftest import MODEL, RealGateway
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TICKET_SCHEMA = json.loads((ROOT / "config" / "schemas" / "ticket.json").read_text())
SYSTEM = ("You route customer support tickets. Answer with only a JSON object with the keys "
          "category (billing, technical, account, shipping or other), priority (low, medium, "
          "high or urgent) and escalate (true or false). No other text.")
TICKETS = [
    "I was charged twice for my subscription this month.",
    "The app crashes every time I open the settings page.",
    "How do I change the email address on my account?",
    "My parcel has not arrived after three weeks.",
    "Our whole team cannot log in since this morning!",
]


def _messages(ticket: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ticket}]


def test_base_model_gets_valid_tickets_through_retries(real_gateway: RealGateway) -> None:
    sdk = real_gateway.sdk()
    reports: list[dict[str, Any]] = []
    for ticket in TICKETS:
        answer = sdk.chat.completions.create(
            model=MODEL, messages=_messages(ticket), max_tokens=120, temperature=0.7,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "ticket", "schema": TICKET_SCHEMA}},
        )
        document = json.loads(answer.choices[0].message.content or "")
        jsonschema.validate(document, TICKET_SCHEMA)
        reports.append((answer.model_extra or {})["structured"])
    assert all(r["valid"] for r in reports)
    deviations = [d["kind"] for r in reports for d in r["deviations"]]
    # The bundled base model answers in prose when only prompted: the retries are real.
    assert deviations, "expected the base model to deviate at least once"
    assert sum(r["attempts"] for r in reports) > len(TICKETS)
    samples = parse(real_gateway.metrics())
    counted = value(samples, "gateway_structured_deviations_total", adapter="base")
    assert counted >= len(deviations)


def test_named_schema_and_streaming(real_gateway: RealGateway) -> None:
    sdk = real_gateway.sdk()
    stream = sdk.chat.completions.create(
        model=MODEL, messages=_messages(TICKETS[0]), max_tokens=120, stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "ticket"}},
    )
    content, verdicts = "", []
    for chunk in stream:
        content += "".join(c.delta.content or "" for c in chunk.choices)
        if chunk.model_extra and "structured" in chunk.model_extra:
            verdicts.append(chunk.model_extra["structured"])
    jsonschema.validate(json.loads(content), TICKET_SCHEMA)
    assert len(verdicts) == 1 and verdicts[0]["valid"] is True


def test_a_first_answer_that_goes_wrong_is_stopped_where_it_did(
    real_gateway: RealGateway,
) -> None:
    """Fail fast on the real engine: the prose is cut at once, the retry answers."""
    answer = real_gateway.sdk().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": TICKETS[0]}], max_tokens=400,
        temperature=0.0,
        response_format={"type": "json_schema", "json_schema": {"name": "ticket"}},
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), TICKET_SCHEMA)
    report = (answer.model_extra or {})["structured"]
    first = report["deviations"][0]
    assert first["attempt"] == 1 and first["stopped_early"] is True, report
    # Every attempt's tokens are counted: without fail fast the prose alone runs to 400.
    assert answer.usage is not None and answer.usage.completion_tokens < 100
    samples = parse(real_gateway.metrics())
    assert value(samples, "gateway_structured_stopped_early_total", adapter="base") >= 1
