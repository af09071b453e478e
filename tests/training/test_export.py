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
    assert "jane.doe@example.com" not in written and "[email]" in written
    assert "4111" not in written and "[number]" in written
    # What export writes is what train reads, against the same schema.
    ticket = Path(__file__).resolve().parents[2] / "config" / "schemas" / "ticket.json"
    schema = ValidatorCache().compile(json.loads(ticket.read_text()))
    assert len(load_examples(out / "train.jsonl", schema)) == 6

    custom = tmp_path / "custom"
    hook = f"{__name__}:drop_refunds"
    assert cli([*args[:-6], "--out", str(custom), "--redact", hook]) == 0
    assert json.loads((custom / "export.json").read_text())["redacted_away"] == 1


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
