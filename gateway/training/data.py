"""Training data: chat JSONL (the capture's format); every bad line is an error with its number."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import InvalidRequest
from gateway.structured.deviations import classify
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.tool_calls import check_tool_answer
from gateway.structured.tools import parse_tools
from gateway.structured.validation import CompiledSchema, ValidatorCache

ROLES = ("system", "user", "assistant", "tool")


class TrainingDataError(ValueError):
    """Data that cannot be trained on; the message names the file and the line."""


@dataclass(frozen=True)
class Example:
    """The prompt (every message before the answer) and the answer to learn.

    An answer that calls functions has its ``calls`` (OpenAI ``tool_calls``) and the
    ``tools`` that were offered; both are rendered through the chat template.
    """

    prompt: tuple[Mapping[str, Any], ...]
    answer: str
    line: int
    calls: tuple[Mapping[str, Any], ...] = ()
    tools: tuple[Mapping[str, Any], ...] = ()


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
        _check_message(message, f"{where}: messages[{index}]")
    *prompt, answer = messages
    calls = answer.get("tool_calls") or []
    if answer["role"] != "assistant" or not (calls or (answer.get("content") or "").strip()):
        raise TrainingDataError(f"{where}: the last message must be the assistant's answer "
                                "(content, or tool_calls)")
    tools = record.get("tools") or []
    if calls:
        check_example_calls(record, answer, where)
    elif schema is not None:
        verdict = classify(answer["content"], "stop", schema)
        if not verdict.valid:
            detail = verdict.messages[0] if verdict.messages else verdict.kind
            raise TrainingDataError(f"{where}: the answer does not match the schema ({detail})")
    if system_prompt and prompt[0]["role"] != "system":
        prompt = [{"role": "system", "content": system_prompt}, *prompt]
    return Example(tuple(_kept(m) for m in prompt), answer.get("content") or "", number,
                   tuple(calls), tuple(tools))


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise TrainingDataError(f"{where} needs a role ({', '.join(ROLES)})")
    content, calls = message.get("content"), message.get("tool_calls")
    calling = content is None and bool(calls) and message["role"] == "assistant"
    if (isinstance(content, str) or calling) and (calls is None or isinstance(calls, list)):
        return
    raise TrainingDataError(f"{where} needs a string content (or, for the assistant, "
                            "content null with a list of tool_calls)")


def check_example_calls(record: Mapping[str, Any], answer: Mapping[str, Any], where: str) -> None:
    """The answer's calls, checked against the functions the record offered."""
    if not record.get("tools"):
        raise TrainingDataError(f"{where}: the answer makes tool calls but the example has no "
                                "'tools' (the functions offered)")
    try:
        tools = parse_tools({"tools": record["tools"]}, SchemaRegistry({}), ValidatorCache())
    except InvalidRequest as exc:
        raise TrainingDataError(f"{where}: {exc.message}") from exc
    assert tools is not None
    verdict = check_tool_answer(answer["tool_calls"], answer.get("content"), "stop", tools)
    if not verdict.valid:
        detail = verdict.messages[0] if verdict.messages else verdict.kind
        raise TrainingDataError(f"{where}: the answer's tool calls are not valid ({detail})")


def _kept(message: Mapping[str, Any]) -> dict[str, Any]:
    """What the chat template reads of a message."""
    kept = {"role": message["role"], "content": message.get("content")}
    for key in ("tool_calls", "tool_call_id"):
        if message.get(key) is not None:
            kept[key] = message[key]
    return kept


def split(examples: Sequence[Example], validation_share: float, seed: int
          ) -> tuple[list[Example], list[Example]]:
    """A held-out validation split, the same for the same seed."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    held = max(1, round(len(shuffled) * validation_share)) if len(shuffled) > 1 else 0
    return shuffled[held:], shuffled[:held]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

