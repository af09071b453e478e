"""Finding JSON documents inside free text, and spotting refusals.

Used by classification to tell prose-wrapped or fenced JSON (``extra_text``)
from broken JSON, and by the ``extract`` retry strategy to salvage the
document without asking the engine again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Parse attempts per answer: each may read to the end of the text, so this bounds the work.
MAX_ATTEMPTS = 32
# A refusal opens with an apology, a negation or "as an AI" and says it will not or cannot
# help within its first sentence; "I'm sorry to hear that ..." alone is empathy, not refusal.
# (The pattern is shared with ``early``, which matches it partially while an answer streams.)
REFUSAL_OPENING = (
    r"^\W{0,3}(?:i['’]?m\b|i\ am\b|i\b|we\b|sorry\b|unfortunately\b|as\ an\ ai\b)"
)
_REFUSAL_OPENING = re.compile(REFUSAL_OPENING, re.IGNORECASE | re.VERBOSE)
_REFUSAL_SAYING = re.compile(
    r"""\b(?:can\ ?not|can['’]t|won['’]t|will\ not|unable\ to|not\ able\ to|must\ decline
          |not\ allowed\ to|not\ something\ i\ can|as\ an\ ai)\b""",
    re.IGNORECASE | re.VERBOSE,
)
_SENTENCE_END = re.compile(r"[.!?\n]")
# A JSON string (possibly unterminated: it then runs to the end) or one bracket.
_BRACKETS_AND_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}\[\]]', re.DOTALL)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder(parse_constant=_reject_constant)


def loads(text: str) -> Any:
    """Strict JSON parsing: ``NaN`` and ``Infinity`` are refused.

    Raises ``ValueError`` (``json.JSONDecodeError`` for syntax) or ``RecursionError``.
    """
    return _decoder().decode(text)


def raw_decode(text: str) -> tuple[Any, int]:
    """The JSON document ``text`` starts with and where it ends (strict, as ``loads``)."""
    return _decoder().raw_decode(text)


@dataclass(frozen=True, slots=True)
class Found:
    """A complete JSON object found in ``text[start:end]``."""

    value: Any
    start: int
    end: int


def find_objects(text: str, limit: int = 8) -> list[Found]:
    """Complete, non-overlapping JSON objects in ``text``, in order, at most ``limit``.

    A broken candidate whose braces never close (the text was cut off) ends
    the search: everything after its ``{`` belongs to it, so an inner object
    must not be mistaken for the answer.
    """
    decoder = _decoder()
    found: list[Found] = []
    pos = text.find("{")
    attempts = 0
    while pos != -1 and len(found) < limit and attempts < MAX_ATTEMPTS:
        attempts += 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            if not closes(text, pos):
                break
            pos = text.find("{", pos + 1)
            continue
        found.append(Found(value, pos, end))
        pos = text.find("{", end)
    return found


def closes(text: str, start: int) -> bool:
    """Whether the bracket at ``start`` is closed later on, strings taken into account."""
    depth = 0
    for token in _BRACKETS_AND_STRINGS.finditer(text, start):
        char = token.group()[0]
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return True
    return False


def pick(found: list[Found], accept: Callable[[Any], bool]) -> Found | None:
    """The first candidate ``accept`` likes, else the first one, else ``None``."""
    for candidate in found:
        if accept(candidate.value):
            return candidate
    return found[0] if found else None


def looks_like_refusal(text: str) -> bool:
    """Whether ``text`` opens the way refusals typically do ("I'm sorry, I can't …")."""
    opening = text[:300].lstrip()
    end = _SENTENCE_END.search(opening)
    first = opening[: end.start() if end else len(opening)]
    return bool(_REFUSAL_OPENING.match(first) and _REFUSAL_SAYING.search(first))


def syntax_error(text: str) -> str:
    """The parser's complaint about the JSON that ``text`` starts (or contains)."""
    start = 0 if text[:1] in "{[" else max(text.find("{"), 0)
    try:
        _decoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        return f"invalid JSON: {exc}"
    return "invalid JSON: unexpected text after the document"


def trailing_whitespace(text: str) -> int:
    """How many whitespace characters ``text`` ends with."""
    return len(text) - len(text.rstrip())
