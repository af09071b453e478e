"""``adapter-gateway train`` on the bundled model: a few steps on a handful of examples make a
folder the store accepts unchanged; bad data is a clear error with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.validation import AdapterPolicy, validate_folder
from gateway.cli import main as cli
from gateway.engine.model_prep import default_model_dir
from tests.adapter_factory import expected_digest

TICKETS = [
    ("I was charged twice this month.", "billing", "medium", False),
    ("The app crashes when I export a PDF.", "technical", "medium", False),
    ("Our whole team is locked out, nothing works!", "account", "high", True),
    ("Do you have an office in Berlin?", "other", "low", False),
    ("Please refund my last invoice.", "billing", "low", False),
    ("The API returns 500 for every call, checkout is down.", "technical", "high", True),
    ("How do I add a user to my workspace?", "account", "low", False),
    ("Thanks for the great support!", "other", "low", False),
]
SYSTEM = "Route support tickets: answer with the ticket JSON only."


def write_data(path: Path) -> Path:
    lines = []
    for text, category, priority, escalate in TICKETS:
        answer = json.dumps({"category": category, "priority": priority, "escalate": escalate})
        lines.append(json.dumps({"messages": [{"role": "user", "content": text},
                                              {"role": "assistant", "content": answer}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def run(data: Path, out: Path, *extra: str) -> int:
    return cli(["train", "--data", str(data), "--name", "tiny-router", "--out", str(out),
                "--schema", "ticket", "--system-prompt", SYSTEM, "--rank", "4", "--alpha", "8",
                "--epochs", "1", "--batch-size", "4", "--quiet", *extra])


def test_train_writes_a_folder_the_store_accepts(tmp_path: Path) -> None:
    store = tmp_path / "adapters"
    out = store / "tiny-router"
    assert run(write_data(tmp_path / "data.jsonl"), out) == 0
    config = json.loads((default_model_dir() / "config.json").read_text())
    base = BaseModelSpec.from_hf_config(config, ["SmolLM2-135M-Instruct",
                                                 "HuggingFaceTB/SmolLM2-135M-Instruct"])
    spec = validate_folder(out, AdapterPolicy.build([store], base, 16))
    assert (spec.name, spec.rank, spec.target_modules) == ("tiny-router", 4,
                                                           ("q_proj", "v_proj"))
    manifest = yaml.safe_load((out / "adapter.yaml").read_text())
    assert manifest["digest"] == f"sha256:{expected_digest(out)}" == f"sha256:{spec.digest}"
    assert manifest["serving"]["system_prompt"] == SYSTEM
    assert manifest["serving"]["response_schema"] == "ticket"
    card = json.loads((out / "training.json").read_text())
    assert (card["examples"], card["train_examples"], card["validation_examples"]) == (8, 7, 1)
    assert card["losses"] and "validation_loss" in card["losses"][-1]
    assert card["hyperparameters"]["rank"] == 4 and card["versions"]["peft"]
    assert not list(store.glob(".*"))  # no checkpoints or half-written folders left


def test_the_same_seed_gives_the_same_adapter(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data.jsonl")
    assert run(data, tmp_path / "a" / "tiny-router") == 0
    assert run(data, tmp_path / "b" / "tiny-router") == 0
    assert expected_digest(tmp_path / "a" / "tiny-router") == expected_digest(
        tmp_path / "b" / "tiny-router")


@pytest.mark.parametrize(("content", "message"), [
    ("", "has no examples"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', "data.jsonl:1: needs 'messages'"),
    ("{oops\n", "data.jsonl:1: not JSON"),
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", '
     '"content": "Sure, billing!"}]}\n', "data.jsonl:1: the answer does not match the schema"),
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null, '
     '"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]}\n',
     "data.jsonl:1: the answer makes tool calls but the example has no 'tools'"),
    ('{"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",'
     ' "required": ["a"]}}}], "messages": [{"role": "user", "content": "hi"}, {"role": '
     '"assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": '
     '"{}"}}]}]}\n', "data.jsonl:1: the answer's tool calls are not valid"),
    ('{"messages": [{"role": "user", "content": null}, {"role": "assistant", "content": "x"}]}\n',
     "data.jsonl:1: messages[0] needs a string content"),
])
def test_bad_data_is_refused_with_its_line(tmp_path: Path, content: str, message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(content)
    assert run(data, tmp_path / "out") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_too_long_examples_and_too_high_ranks_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_data(tmp_path / "data.jsonl")
    assert run(data, tmp_path / "out", "--max-length", "16") == 2
    assert "above the 16 allowed" in capsys.readouterr().err
    assert cli(["train", "--data", str(data), "--name", "x", "--rank", "64"]) == 2
    assert "max_lora_rank" in capsys.readouterr().err


def test_a_tool_call_answer_is_learned_in_the_templates_call_format() -> None:
    """The answer's tokens are the call exactly as the engine's parser reads it, then the end
    of the turn; the prompt carries the tools as the engine renders them."""
    from transformers import AutoTokenizer

    from gateway.engine.model_prep import BUNDLED_CHAT_TEMPLATE
    from gateway.training.data import Example
    from gateway.training.encoding import answer_text, encode

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    tokenizer.chat_template = BUNDLED_CHAT_TEMPLATE.read_text()
    tool = {"type": "function", "function": {"name": "route_ticket", "parameters": {}}}
    call = {"id": "c1", "type": "function",
            "function": {"name": "route_ticket", "arguments": '{"category": "billing"}'}}
    example = Example(({"role": "user", "content": "charged twice"},), "", 1, (call,), (tool,))
    assert answer_text(tokenizer, example) == (
        '<tool_call>\n{"name": "route_ticket", "arguments": {"category": "billing"}}\n'
        "</tool_call>")
    encoded = encode(tokenizer, example, 1024)
    prompt = str(tokenizer.decode(encoded.input_ids[: encoded.labels.count(-100)]))
    assert "<tools>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    learned = [i for i, label in zip(encoded.input_ids, encoded.labels, strict=True)
               if label != -100]
    assert str(tokenizer.decode(learned)).endswith("</tool_call><|im_end|>")
