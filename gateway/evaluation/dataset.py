"""The evaluation dataset: JSONL, one item a line; a bad line is an error with its number."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Item:
    id: str
    messages: tuple[Mapping[str, Any], ...]
    expected: Mapping[str, Any] | None = None
    tags: tuple[str, ...] = field(default=())
    # More functions offered beside a tool variant's own, and the one a correct answer calls
    # (``expected`` then holds its arguments).
    tools: tuple[Mapping[str, Any], ...] = field(default=())
    expected_call: str | None = None


def load_dataset(path: Path) -> list[Item]:
    """Every item of ``path``; refuses the whole file at its first bad line."""
    if not path.is_file():
        raise DatasetError(f"the dataset {path} does not exist")
    items: list[Item] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            item = _item(line, number, path)
            if item.id in seen:
                raise DatasetError(f"{path}:{number}: the id {item.id!r} is used twice")
            seen.add(item.id)
            items.append(item)
    if not items:
        raise DatasetError(f"the dataset {path} has no items")
    return items


def _item(line: str, number: int, path: Path) -> Item:
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: each line must be a JSON object")
    unknown = set(record) - {"id", "messages", "input", "expected", "tags", "tools",
                             "expected_call"}
    if unknown:
        raise DatasetError(f"{where}: unknown fields {sorted(unknown)}; an item has "
                           "'messages' or 'input', and optionally 'expected', 'id', 'tags', "
                           "'tools', 'expected_call'")
    return Item(
        id=str(record.get("id", f"line-{number}")),
        messages=_messages(record, where),
        expected=_expected(record.get("expected"), where),
        tags=_tags(record.get("tags"), where),
        tools=_tools(record.get("tools"), where),
        expected_call=_expected_call(record.get("expected_call"), where),
    )


def _messages(record: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any], ...]:
    if ("messages" in record) == ("input" in record):
        raise DatasetError(f"{where}: give exactly one of 'messages' or 'input'")
    if "input" in record:
        text = record["input"]
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f"{where}: 'input' must be a non-empty string")
        return ({"role": "user", "content": text},)
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f"{where}: 'messages' must be a non-empty list")
    for index, message in enumerate(messages):
        if (not isinstance(message, dict) or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)):
            raise DatasetError(f"{where}: messages[{index}] must have a role among "
                               f"{sorted(ROLES)} and a string content")
    return tuple(messages)


def _expected(value: Any, where: str) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise DatasetError(f"{where}: 'expected' must be the correct JSON answer (an object)")


def _tools(value: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) for t in value
    ):
        raise DatasetError(f"{where}: 'tools' must be a list of function tools "
                           '({"type": "function", "function": {"name": ..., "parameters": ...}})')
    return tuple(value)


def _expected_call(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise DatasetError(f"{where}: 'expected_call' must be the name of the function a correct "
                       "answer calls ('expected' holds its arguments)")


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise DatasetError(f"{where}: 'tags' must be a list of strings")
    return tuple(value)
