"""The shipped chat templates: the bundled model's renders a chat without tools byte for byte
as the model's own template (adapters trained before tools stay valid), and both render
tools, calls and results in the format their engine parser reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from gateway.engine.model_prep import BUNDLED_CHAT_TEMPLATE, default_model_dir, is_prepared

ROOT = Path(__file__).resolve().parents[2]
LLAMA_TEMPLATE = ROOT / "deploy" / "overlays" / "gpu" / "llama3.1-json-tools.jinja"
TOOLS = [{"type": "function", "function": {
    "name": "route_ticket", "description": "Route a ticket.",
    "parameters": {"type": "object", "properties": {"category": {"type": "string"}}}}}]
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "route_ticket", "arguments": '{"category": "billing"}'}}
CHATS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "a\nb"}],
    [{"role": "user", "content": "x"}, {"role": "assistant", "content": '{"a": 1}'}],
]
WITH_CALLS: list[dict[str, Any]] = [{"role": "user", "content": "I was charged twice"},
              {"role": "assistant", "content": None, "tool_calls": [CALL]},
              {"role": "tool", "tool_call_id": "call_1", "content": "routed"}]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    folder = default_model_dir()
    if not is_prepared(folder):
        pytest.skip("the bundled model is not prepared (make setup)")
    return AutoTokenizer.from_pretrained(folder)


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]],
           template: str | None = None, tools: Any = None, prompt: bool = True) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt,
                                         chat_template=template, tools=tools)
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("chat", CHATS)
@pytest.mark.parametrize("prompt", [True, False])
def test_a_chat_without_tools_renders_as_the_models_own(
    tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, Any]], prompt: bool
) -> None:
    ours = BUNDLED_CHAT_TEMPLATE.read_text()
    assert render(tokenizer, chat, ours, prompt=prompt) == render(tokenizer, chat, prompt=prompt)


def test_tools_calls_and_results_render_in_the_hermes_format(
    tokenizer: PreTrainedTokenizerBase
) -> None:
    text = render(tokenizer, WITH_CALLS, BUNDLED_CHAT_TEMPLATE.read_text(), TOOLS)
    assert f"<tools>\n{json.dumps(TOOLS[0])}\n</tools>" in text
    assert ('<tool_call>\n{"name": "route_ticket", "arguments": {"category": "billing"}}\n'
            "</tool_call><|im_end|>") in text
    assert "<|im_start|>user\n<tool_response>\nrouted\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_the_llama_template_renders_the_llama3_json_format(
    tokenizer: PreTrainedTokenizerBase
) -> None:
    text = render(tokenizer, WITH_CALLS, LLAMA_TEMPLATE.read_text(), TOOLS)
    assert "Environment: ipython" in text and json.dumps(TOOLS[0]) in text
    assert ('<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "route_ticket", '
            '"parameters": {"category": "billing"}}<|eot_id|>') in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\nrouted<|eot_id|>" in text
    assert render(tokenizer, CHATS[0], LLAMA_TEMPLATE.read_text()).endswith(
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
