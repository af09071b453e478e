"""Captures validated structured answers as fine-tuning examples (opt-in).

Every structured request the gateway answered with valid JSON becomes one JSONL
line in ``<dir>/<adapter>/<schema>.jsonl``, in the chat fine-tuning format
(``{"messages": [...]}``, the valid answer as the last assistant turn) plus what
it took (attempts and deviation kinds). Those that deviated first are the
examples a format fine-tune learns from; review their content before training,
since the gateway vouches for the format only.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from gateway.privacy.redaction import KINDS, Kind, Redactor

log = logging.getLogger(__name__)

# Why an example could not be written (the metric's bounded label set).
CAPTURE_ERROR_REASONS = ("disk_full", "permission", "not_a_directory", "other")
_REASONS = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EACCES: "permission",
            errno.EPERM: "permission", errno.EROFS: "permission",
            errno.ENOTDIR: "not_a_directory", errno.EEXIST: "not_a_directory"}


# The parts of an example that carry what people wrote (tools and metadata do not).
_PERSONAL = ("messages", "prompt", "completion")


class CaptureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    dir: Path = Path("var/examples")
    only_deviations: bool = Field(False, description="Capture only answers that needed a retry.")
    max_file_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    # Full files kept per adapter and schema (<schema>.jsonl.1 the newest); 0: a full file
    # takes no more examples.
    max_files: int = Field(5, ge=0, le=100)
    # Personal data replaced by pseudonyms of the same shape before anything is written:
    # here, and in the stored responses of /v1/responses (docs/privacy.md). [] keeps text
    # as it came.
    redact: list[Kind] = Field(default_factory=lambda: list(KINDS))


class ExampleCapture:
    """Appends examples to bounded JSONL files that rotate: a full ``<schema>.jsonl`` becomes
    ``<schema>.jsonl.1`` (older ones move up, the oldest beyond ``max_files`` goes)."""

    def __init__(self, settings: CaptureSettings) -> None:
        self.settings = settings
        self.redactor = Redactor(settings.redact)
        self._lock = threading.Lock()
        self._full: set[Path] = set()
        self._reported: set[str] = set()

    def wants(self, deviated: bool) -> bool:
        return self.settings.enabled and (deviated or not self.settings.only_deviations)

    def record(self, adapter: str, schema: str, example: Mapping[str, Any]) -> str | None:
        """Writes one example; meant to run in a worker thread (it does file I/O).

        Capture is best effort: a write that fails (a full disk, a read-only or missing
        folder) is logged once per cause and its reason returned; the answer goes out anyway.
        """
        path = self.settings.dir / _safe(adapter) / f"{_safe(schema)}.jsonl"
        example = {**example, **{k: self.redactor.json(example[k]) for k in _PERSONAL
                                 if k in example}}
        try:
            self._write(path, json.dumps(example, ensure_ascii=False) + "\n")
        except OSError as exc:
            reason = _REASONS.get(exc.errno or 0, "other")
            if reason not in self._reported:
                self._reported.add(reason)
                log.error("capture: cannot write examples to %s (%s); answers are served, "
                          "examples are lost until this is fixed (logged once per cause; "
                          "see gateway_capture_errors_total)", path, exc)
            return reason
        return None

    def _write(self, path: Path, line: str) -> None:
        with self._lock:
            if path in self._full:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            # Workers of one gateway append to and rotate the same file: an OS-level lock
            # (filelock) keeps each size check, rotation and append whole across them.
            with FileLock(path.parent / f".{path.name}.lock"):
                self._append(path, line)

    def _append(self, path: Path, line: str) -> None:
        size = path.stat().st_size if path.exists() else 0
        if size + len(line) > self.settings.max_file_bytes:
            if self.settings.max_files == 0 or len(line) > self.settings.max_file_bytes:
                self._full.add(path)
                log.warning("example file %s reached %d bytes; no more examples go to it",
                            path, self.settings.max_file_bytes)
                return
            _rotate(path, self.settings.max_files)
        with path.open("a", encoding="utf-8") as out:
            out.write(line)


def chat_example(
    messages: Sequence[Mapping[str, Any]], answer: Mapping[str, Any], report: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """OpenAI's chat fine-tuning format: the messages, the answer as the last assistant
    message (with its ``tool_calls`` when it made calls), and the ``tools`` offered."""
    example: dict[str, Any] = {"messages": [*(dict(m) for m in messages), dict(answer)]}
    if tools:
        example["tools"] = [dict(tool) for tool in tools]
    return {**example, **_meta(report)}


def completion_example(prompt: str, answer: str, report: Mapping[str, Any]) -> dict[str, Any]:
    return {"prompt": prompt, "completion": answer, **_meta(report)}


def _meta(report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "attempts": report["attempts"],
        "deviations": [d["kind"] for d in report["deviations"]],
        "captured_at": int(time.time()),
    }


def _rotate(path: Path, keep: int) -> None:
    """``x.jsonl`` -> ``x.jsonl.1`` -> ... -> ``x.jsonl.<keep>``; the oldest is removed."""
    path.with_name(f"{path.name}.{keep}").unlink(missing_ok=True)
    for index in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.rename(path.with_name(f"{path.name}.{index + 1}"))
    path.rename(path.with_name(f"{path.name}.1"))
    log.info("example file %s rotated (%d kept)", path, keep)


def _safe(label: str) -> str:
    """Metric labels are already bounded and safe; this keeps paths flat regardless."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label).lstrip(".") or "_"
