"""Training data: chat JSONL (the capture's format); every bad line is an error with its number."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.structured.deviations import classify
from gateway.structured.validation import CompiledSchema


class TrainingDataError(ValueError):
    """Data that cannot be trained on; the message names the file and the line."""


@dataclass(frozen=True)
class Example:
    """The prompt (every message before the answer) and the answer to learn."""

    prompt: tuple[Mapping[str, str], ...]
    answer: str
    line: int


def load_examples(path: Path, schema: CompiledSchema | None = None,
                  system_prompt: str | None = None) -> list[Example]:
    """The examples of ``path``; answers must pass ``schema`` when one is given.

    ``system_prompt`` is put first in examples without one, as the gateway does at
    serving time with an adapter's default system prompt.
    """
    if not path.is_file():
        raise TrainingDataError(f"the training data {path} does not exist")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            examples.append(_example(line, number, path, schema, system_prompt))
    if not examples:
        raise TrainingDataError(f"the training data {path} has no examples")
    return examples


def _example(line: str, number: int, path: Path, schema: CompiledSchema | None,
             system_prompt: str | None) -> Example:
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{where}: not JSON ({exc.msg})") from exc
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        raise TrainingDataError(f"{where}: needs 'messages' with a prompt and the answer")
    for index, message in enumerate(messages):
        if (not isinstance(message, dict) or not isinstance(message.get("content"), str)
                or message.get("role") not in ("system", "user", "assistant")):
            raise TrainingDataError(f"{where}: messages[{index}] needs a role (system, user, "
                                    "assistant) and a string content")
    *prompt, answer = messages
    if answer["role"] != "assistant" or not answer["content"].strip():
        raise TrainingDataError(f"{where}: the last message must be the assistant's answer")
    if schema is not None:
        verdict = classify(answer["content"], "stop", schema)
        if not verdict.valid:
            detail = verdict.messages[0] if verdict.messages else verdict.kind
            raise TrainingDataError(f"{where}: the answer does not match the schema ({detail})")
    if system_prompt and prompt[0]["role"] != "system":
        prompt = [{"role": "system", "content": system_prompt}, *prompt]
    return Example(tuple({"role": m["role"], "content": m["content"]} for m in prompt),
                   answer["content"], number)


def split(examples: Sequence[Example], validation_share: float, seed: int
          ) -> tuple[list[Example], list[Example]]:
    """A held-out validation split, the same for the same seed."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    held = max(1, round(len(shuffled) * validation_share)) if len(shuffled) > 1 else 0
    return shuffled[held:], shuffled[:held]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

