"""Captured traffic -> `dataset export` -> `train`'s input: deduplicated, redacted, split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.cli import main as cli
from gateway.structured.validation import ValidatorCache
from gateway.training.data import load_examples
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine

TICKETS = [  # (message, category); the last two repeat earlier prompts
    ("I was charged twice, mail me at jane.doe@example.com", "billing"),
    ("Refund please, card 4111 1111 1111 1111", "billing"),
    ("Invoice has the wrong VAT", "billing"),
    ("The invoice total is wrong", "billing"),
    ("App crashes on export", "technical"),
    ("API returns 500", "technical"),
    ("Dashboard is slow", "technical"),
    ("Webhooks stopped", "technical"),
    ("Cannot log in", "account"),
    ("Delete my account", "account"),
    ("Add a user to my team", "account"),
    ("Change my email", "account"),
    ("  APP crashes   on EXPORT ", "technical"),
    ("cannot log in", "account"),
]


def answer(category: str) -> str:
    return json.dumps({"category": category, "priority": "low", "escalate": False})


def drop_refunds(record: dict[str, Any]) -> dict[str, Any] | None:
    """A custom redaction hook: refunds never leave the building."""
    return None if "Refund" in record["messages"][-2]["content"] else record


@pytest.mark.anyio
async def test_capture_export_train_round_trip(make_settings: SettingsFactory,
                                               fake_engine: FakeEngine, tmp_path: Path) -> None:
    capture = tmp_path / "examples"
    app = create_app(make_settings(structured={"capture": {"enabled": True,
                                                           "dir": str(capture)}}))
    async for client in start(app):
        for index, (text, category) in enumerate(TICKETS):
            if index % 4 == 0:
                fake_engine.enqueue("Sure, let me route that for you.")  # recovered by retry
            fake_engine.enqueue(answer(category))
            body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": text}],
                    "response_format": {"type": "json_schema", "json_schema": {"name": "ticket"}}}
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200

    out = tmp_path / "dataset"
    args = ["dataset", "export", "--capture", str(capture), "--adapter", "base", "--schema",
            "ticket", "--out", str(out), "--validation", "0.25", "--test", "0.25"]
    assert cli(args) == 0
    summary = json.loads((out / "export.json").read_text())
    assert (summary["read"], summary["duplicates"], summary["invalid"]) == (14, 2, [])
    # 0, 4, 8 and 12 needed a retry; the newest answer to a prompt is kept: 12 replaces 4,
    # and 13 (first-time valid) replaces 8.
    assert summary["recovered"] == 2
    splits = {name: summary["splits"][name] for name in ("train", "validation", "test")}
    assert all(splits[part] == {"billing": 1, "technical": 1, "account": 1}
               for part in ("validation", "test"))  # stratified by category
    assert splits["train"] == {"billing": 2, "technical": 2, "account": 2}
    written = "".join((out / f"{n}.jsonl").read_text() for n in splits)
    # Redacted at capture already (structured.capture.redact), as pseudonyms of one shape.
    assert "jane.doe@example.com" not in written and "@example.invalid" in written
    assert "4111 1111 1111 1111" not in written and "card " in written
    # What export writes is what train reads, against the same schema.
    ticket = Path(__file__).resolve().parents[2] / "config" / "schemas" / "ticket.json"
    schema = ValidatorCache().compile(json.loads(ticket.read_text()))
    assert len(load_examples(out / "train.jsonl", schema)) == 6

    custom = tmp_path / "custom"
    hook = f"{__name__}:drop_refunds"
    assert cli([*args[:-6], "--out", str(custom), "--redact", hook]) == 0
    assert json.loads((custom / "export.json").read_text())["redacted_away"] == 1


CONTACT = ('{"name": "Bob", "email": "bob@x.com", "phone": "+44 20 7946 0958", '
           '"company": null}')


def test_export_redacts_every_message_and_the_answer(tmp_path: Path) -> None:
    """What was captured unredacted (redact: []) leaves export with the personal data gone
    from the system prompt, the user's words, the answer's values and tool-call arguments,
    and the answer still valid against its schema."""
    record = {"messages": [
        {"role": "system", "content": "Extract the contact. Escalations: ops@corp.example"},
        {"role": "user", "content": "mail bob@x.com or call +44 20 7946 0958"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "lookup", "arguments": '{"email": "bob@x.com"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "bob@x.com: no record"},
        {"role": "assistant", "content": CONTACT}], "attempts": 1, "deviations": []}
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "contact.jsonl").write_text(json.dumps(record) + "\n")
    out = tmp_path / "dataset"
    assert cli(["dataset", "export", "--capture", str(tmp_path), "--adapter", "base",
                "--schema", "contact", "--out", str(out), "--validation", "0",
                "--test", "0"]) == 0
    written = (out / "train.jsonl").read_text()
    for personal in ("bob@x.com", "ops@corp.example", "7946 0958"):
        assert personal not in written
    (exported,) = [json.loads(line) for line in written.splitlines()]
    answer = json.loads(exported["messages"][-1]["content"])
    arguments = json.loads(exported["messages"][2]["tool_calls"][0]["function"]["arguments"])
    assert answer["email"] == arguments["email"]  # one pseudonym for one address
    assert answer["email"].endswith("@example.invalid") and answer["phone"].startswith("+")


def test_export_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["dataset", "export", "--capture", str(tmp_path), "--adapter", "base", "--out",
            str(tmp_path / "o")]
    assert cli([*base, "--schema", "ticket"]) == 2
    assert "no captured examples" in capsys.readouterr().err
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "ticket.jsonl").write_text("{broken\n")
    assert cli([*base, "--schema", "ticket"]) == 2
    assert "ticket.jsonl:1: not JSON" in capsys.readouterr().err
    assert cli([*base, "--schema", "ticket", "--redact", "no.such:thing"]) == 2
    assert "cannot import" in capsys.readouterr().err


ROUTE = {"type": "function", "function": {"name": "route_ticket", "parameters": json.loads(
    (Path(__file__).resolve().parents[2] / "config" / "schemas" / "ticket.json").read_text())}}


@pytest.mark.anyio
async def test_tool_calls_go_from_capture_through_export_to_train(
    make_settings: SettingsFactory, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    """Captured tool calls keep OpenAI's fine-tuning format (tools plus the assistant's
    tool_calls) through export, and train reads them, rendered in the template's format."""
    capture = tmp_path / "examples"
    app = create_app(make_settings(structured={"capture": {"enabled": True,
                                                           "dir": str(capture)}}))
    async for client in start(app):
        for index, (text, category) in enumerate(TICKETS[:8]):
            if index % 2:  # a call left in the text: recovered by the constrained call
                fake_engine.enqueue("I think it is " + category)
                fake_engine.enqueue(json.dumps({"name": "route_ticket",
                                                "arguments": json.loads(answer(category))}))
            else:
                fake_engine.enqueue("", finish_reason="tool_calls",
                                    tool_calls=[("route_ticket", answer(category))])
            body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": text}],
                    "tools": [ROUTE], "tool_choice": "required"}
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
    captured = [json.loads(line) for line in
                (capture / "base" / "inline.jsonl").read_text().splitlines()]
    assert captured[0]["tools"] == [ROUTE]
    assert captured[1]["messages"][-1]["tool_calls"][0]["function"]["name"] == "route_ticket"
    assert captured[1]["messages"][-1]["content"] is None and captured[1]["deviations"]

    out = tmp_path / "dataset"
    assert cli(["dataset", "export", "--capture", str(capture), "--adapter", "base", "--schema",
                "inline", "--out", str(out), "--validation", "0", "--test", "0"]) == 0
    summary = json.loads((out / "export.json").read_text())
    assert (summary["read"], summary["invalid"], summary["recovered"]) == (8, [], 4)
    assert "jane.doe@example.com" not in (out / "train.jsonl").read_text()
    examples = load_examples(out / "train.jsonl")
    assert len(examples) == 8 and all(e.tools == (ROUTE,) for e in examples)
    assert examples[0].calls[0]["function"]["name"] == "route_ticket"
