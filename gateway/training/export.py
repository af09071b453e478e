"""Captured traffic to a training dataset: deduplicated, re-validated, redacted, split.

The gateway's capture (``structured.capture``) writes every validly answered structured
request to ``<capture>/<adapter>/<schema>.jsonl`` (and rotated ``.jsonl.N`` files). Export
reads them, and before anything is written: applies the redaction hook (a callable
``record -> record | None``; None drops it), re-validates every answer against the schema,
drops duplicates (the same prompt, compared without case and spacing differences; the
newest answer is kept), marks the records that needed a retry (``recovered``: the cases a
format fine-tune learns most from) and keeps them with their final valid answer, then splits
train/validation/test, stratified by the schema's first enum property when it has one.
"""

from __future__ import annotations

import importlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.privacy import redaction
from gateway.structured.deviations import classify
from gateway.structured.validation import CompiledSchema
from gateway.training.data import TrainingDataError, check_example_calls

Redactor = Callable[[dict[str, Any]], dict[str, Any] | None]
_SPACE = re.compile(r"\s+")


def redact_personal_data() -> Redactor:
    """The default hook: e-mail addresses, phone and card numbers, in every message (the
    answer's string values and tool-call arguments too), become pseudonyms of the same
    shape, the same one for the same value within an export (gateway/privacy)."""
    personal = redaction.Redactor()
    return lambda record: {**record, "messages": [personal.json(m) for m in record["messages"]]}


def load_redactor(spec: str | None) -> Redactor:
    """``module:function``, or the default; ``none`` keeps records as captured."""
    if spec is None:
        return redact_personal_data()
    if spec == "none":
        return lambda record: record
    module, _, name = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"--redact {spec!r}: cannot import it ({exc}); give module:function") from exc
    if not callable(found):
        raise ValueError(f"--redact {spec!r} is not callable")
    hook: Redactor = found
    return hook


@dataclass
class ExportSummary:
    read: int = 0
    redacted_away: int = 0
    invalid: list[str] = field(default_factory=list)
    duplicates: int = 0
    recovered: int = 0
    splits: dict[str, dict[str, int]] = field(default_factory=dict)


def export(capture: Path, adapter: str, schema_name: str, schema: CompiledSchema, out: Path,
           redact: Redactor, shares: tuple[float, float] = (0.1, 0.1), seed: int = 0
           ) -> ExportSummary:
    """Writes train.jsonl, validation.jsonl, test.jsonl and export.json into ``out``."""
    files = _files(capture / adapter, schema_name)
    if not files:
        raise ValueError(f"no captured examples for adapter {adapter!r} and schema "
                         f"{schema_name!r} under {capture}")
    summary = ExportSummary()
    kept: dict[str, dict[str, Any]] = {}
    for path in files:  # oldest first: a newer answer to the same prompt replaces an older
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            summary.read += 1
            record = _read(line, f"{path}:{number}")
            cleaned = redact(record)
            if cleaned is None:
                summary.redacted_away += 1
                continue
            if not _valid(cleaned, schema):
                summary.invalid.append(f"{path.name}:{number}")
                continue
            key = _prompt_key(cleaned)
            summary.duplicates += key in kept
            kept[key] = {"messages": cleaned["messages"],
                         **({"tools": cleaned["tools"]} if cleaned.get("tools") else {}),
                         "recovered": bool(cleaned.get("deviations"))}
    records = list(kept.values())
    summary.recovered = sum(r["recovered"] for r in records)
    splits = _split(records, schema, shares, seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as sink:
            for record in part:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        summary.splits[name] = dict(Counter(_label(r, schema) for r in part))
    (out / "export.json").write_text(json.dumps(summary.__dict__, indent=2) + "\n")
    return summary


def _files(folder: Path, schema: str) -> list[Path]:
    rotated = sorted(folder.glob(f"{schema}.jsonl.*"),
                     key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    current = folder / f"{schema}.jsonl"
    return [*rotated, *([current] if current.exists() else [])]


def _read(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON ({exc})") from exc
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages or not all(
        isinstance(m, dict) and (isinstance(m.get("content"), str) or m.get("tool_calls"))
        for m in messages
    ) or messages[-1].get("role") != "assistant":
        raise ValueError(f"{where}: not a captured chat example (messages ending with the "
                         "assistant's answer)")
    return dict(record)


def _valid(record: Mapping[str, Any], schema: CompiledSchema) -> bool:
    """The answer re-validated: tool calls against the functions the record offered, the
    content against ``schema``."""
    answer = record["messages"][-1]
    if answer.get("tool_calls"):
        try:
            check_example_calls(record, answer, "")
        except TrainingDataError:
            return False
        return True
    return classify(answer.get("content"), "stop", schema).valid


def _prompt_key(record: Mapping[str, Any]) -> str:
    prompt = " ".join(str(m.get("content")) for m in record["messages"][:-1]
                      if m["role"] == "user")
    return _SPACE.sub(" ", prompt).strip().casefold()


def _label(record: Mapping[str, Any], schema: CompiledSchema) -> str:
    enum_property = next((name for name, sub in (schema.schema.get("properties") or {}).items()
                          if isinstance(sub, Mapping) and "enum" in sub), None)
    if enum_property is None:
        return "all"
    last = record["messages"][-1]
    calls = last.get("tool_calls")
    answer = json.loads(calls[0]["function"]["arguments"] if calls else last["content"])
    return str(answer.get(enum_property)) if isinstance(answer, dict) else "all"


def _split(records: list[dict[str, Any]], schema: CompiledSchema,
           shares: tuple[float, float], seed: int) -> dict[str, list[dict[str, Any]]]:
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_label[_label(record, schema)].append(record)
    rng = random.Random(seed)
    parts: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "test": []}
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        validation, test = (round(len(group) * s) for s in shares)
        parts["validation"] += group[:validation]
        parts["test"] += group[validation:validation + test]
        parts["train"] += group[validation + test:]
    return parts
