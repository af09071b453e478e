"""Examples as token ids: the prompt as the engine renders it, the loss on the answer only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.training.data import Example, TrainingDataError

IGNORED = -100  # the label transformers' loss skips


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]


def prompt_ids(tokenizer: Any, messages: Sequence[Mapping[str, Any]],
               tools: Sequence[Mapping[str, Any]] = ()) -> list[int]:
    """The prompt exactly as vLLM renders a chat request: the chat template (the tokenizer's,
    set to the engine's ``--chat-template``), the tools offered, and the generation prompt
    (``<|im_start|>assistant``) at the end."""
    rendered = tokenizer.apply_chat_template(list(messages), tools=list(tools) or None,
                                             add_generation_prompt=True, tokenize=True)
    ids = rendered["input_ids"] if isinstance(rendered, Mapping) else rendered
    return [int(i) for i in ids]


def answer_text(tokenizer: Any, example: Example) -> str:
    """The answer as the model writes it. Tool calls are written in the template's own call
    format: the whole conversation rendered, less the prompt, less the end of the turn."""
    if not example.calls:
        return example.answer
    answer = {"role": "assistant", "content": example.answer or None,
              "tool_calls": list(example.calls)}
    tools = list(example.tools) or None
    prompt = tokenizer.apply_chat_template(list(example.prompt), tools=tools,
                                           add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template([*example.prompt, answer], tools=tools,
                                          add_generation_prompt=False, tokenize=False)
    if not whole.startswith(prompt):
        raise TrainingDataError(f"line {example.line}: the chat template renders the answer's "
                                "tool calls in a way that changes the prompt; use a template "
                                "that renders the conversation in order")
    text: str = whole[len(prompt):].rstrip()
    end = str(tokenizer.eos_token or "")
    return text[: -len(end)] if end and text.endswith(end) else text


def encode(tokenizer: Any, example: Example, max_length: int) -> Encoded:
    """Prompt and answer ids; only the answer (and its end token) carries labels."""
    prompt = prompt_ids(tokenizer, example.prompt, example.tools)
    answer = [*tokenizer(answer_text(tokenizer, example), add_special_tokens=False)["input_ids"],
              tokenizer.eos_token_id]
    if len(prompt) + len(answer) > max_length:
        raise TrainingDataError(
            f"line {example.line}: the example is {len(prompt) + len(answer)} tokens, above "
            f"the {max_length} allowed (--max-length, at most the engine's max_model_len); "
            "shorten it or raise the limit")
    return Encoded(prompt + answer, [IGNORED] * len(prompt) + answer)


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for a batch."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in batch]
    labels = [e.labels + [IGNORED] * (width - len(e.labels)) for e in batch]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask)}
