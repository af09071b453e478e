"""How a structured answer deviates from its schema, if it does.

The taxonomy is fixed (it labels metrics):

``empty``            no content at all, or only whitespace, and the model stopped by itself.
``refusal``          the model refused: the OpenAI ``refusal`` field is set, or an answer
                     without JSON opens the way refusals do ("I'm sorry, I can't …").
``truncated``        cut at the token limit (``finish_reason == "length"``) before the JSON
                     document was complete, the whitespace run-away included.
``extra_text``       a complete JSON object surrounded by prose or code fences.
``invalid_json``     broken JSON syntax: the answer contains ``{`` (or starts with ``[``)
                     yet no complete JSON document.
``not_json``         no JSON at all.
``schema_violation`` a complete JSON document that fails the schema; ``keyword`` names the
                     JSON-Schema keyword that failed (``required``, ``type``, ``enum``, …).

Tool calls (``gateway.structured.tool_calls`` classifies them):

``tool_call_in_content``            the call was written into ``content`` (``tool_calls``
                                    empty): the engine's parser did not take it.
``tool_call_missing``               no call where ``tool_choice`` required one.
``tool_call_unexpected``            a call under ``tool_choice: "none"``, or several under
                                    ``parallel_tool_calls: false``.
``tool_unknown``                    a call to a function that was not offered (or not the
                                    one ``tool_choice`` named).
``tool_arguments_invalid_json``     arguments (or a call in the content) that are not JSON.
``tool_arguments_truncated``        arguments cut off at the token limit.
``tool_arguments_schema_violation`` arguments that fail the function's ``parameters``;
                                    ``keyword`` names the failing keyword.

Precedence, first match wins:

1. ``refusal`` when the ``refusal`` field is set (the engine's own signal);
2. a complete document (the whole answer, whitespace aside, parses): valid or
   ``schema_violation`` (even if ``finish_reason`` is ``length``: nothing was lost);
3. ``truncated`` when ``finish_reason`` is ``length``;
4. ``empty``;
5. ``extra_text`` when a JSON object is found inside the text;
6. ``refusal`` by phrasing;
7. ``invalid_json``;
8. ``not_json``.

An answer longer than ``SchemaBounds.max_answer_chars`` (surrounding
whitespace aside) is not parsed: it is
``truncated`` when cut at the token limit, else a ``schema_violation`` with
the gateway's own keyword ``x-max-answer-chars``; a document nested too
deeply for the validator is a ``schema_violation`` with ``x-max-depth``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.structured import extraction
from gateway.structured.validation import CompiledSchema

ANSWER_TOO_LONG = "x-max-answer-chars"
# A trailing whitespace run this long is reported as a run-away.
_RUNAWAY_WHITESPACE = 64


class DeviationKind(StrEnum):
    """The ways an answer can deviate; values are metric labels."""

    EMPTY = "empty"
    REFUSAL = "refusal"
    TRUNCATED = "truncated"
    EXTRA_TEXT = "extra_text"
    INVALID_JSON = "invalid_json"
    NOT_JSON = "not_json"
    SCHEMA_VIOLATION = "schema_violation"
    TOOL_CALL_IN_CONTENT = "tool_call_in_content"
    TOOL_CALL_MISSING = "tool_call_missing"
    TOOL_CALL_UNEXPECTED = "tool_call_unexpected"
    TOOL_UNKNOWN = "tool_unknown"
    TOOL_ARGUMENTS_INVALID_JSON = "tool_arguments_invalid_json"
    TOOL_ARGUMENTS_TRUNCATED = "tool_arguments_truncated"
    TOOL_ARGUMENTS_SCHEMA_VIOLATION = "tool_arguments_schema_violation"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking one answer.

    ``messages`` are human readable, located by JSON path where the validator
    gave one; ``parsed`` is the document when the whole answer parsed;
    ``extracted`` is the JSON object found inside the answer (``extra_text``,
    or a ``truncated`` answer whose object was complete before the cut), or, for tool
    calls, the valid calls found in the content. ``calls`` are the checked tool calls of
    a valid answer that made calls.
    """

    valid: bool
    kind: DeviationKind | None = None
    keyword: str | None = None
    messages: tuple[str, ...] = ()
    parsed: Any = None
    extracted: Any | None = None
    calls: tuple[Any, ...] | None = None


def classify(
    content: str | None,
    finish_reason: str | None,
    validator: CompiledSchema,
    refusal: str | None = None,
) -> Verdict:
    """Classifies one answer; pure, and bounded in time by the validator's limits."""
    if refusal and refusal.strip():
        return _deviation(DeviationKind.REFUSAL, f"the model refused: {refusal.strip()[:300]}")
    text = content or ""
    cut = finish_reason == "length"
    # Surrounding whitespace costs nothing to skip, so a run-away is still classified in full.
    stripped = text.strip()
    if len(stripped) > validator.max_answer_chars:
        return _too_long(len(stripped), validator.max_answer_chars, cut)
    if stripped:
        try:
            document = extraction.loads(stripped)
        except (ValueError, RecursionError):
            pass
        else:
            return check_document(document, validator)
    if cut:
        return _truncated(text, stripped, validator)
    if not stripped:
        return _deviation(DeviationKind.EMPTY, "the answer is empty")
    return _classify_text(stripped, validator)


def check_document(document: Any, validator: CompiledSchema) -> Verdict:
    """The verdict on a parsed document: valid, or a ``schema_violation``."""
    problems = validator.problems(document)
    if not problems:
        return Verdict(valid=True, parsed=document)
    return Verdict(
        valid=False,
        kind=DeviationKind.SCHEMA_VIOLATION,
        keyword=problems[0].keyword,
        messages=tuple(str(p) for p in problems),
        parsed=document,
    )


def _classify_text(stripped: str, validator: CompiledSchema) -> Verdict:
    found = extraction.pick(extraction.find_objects(stripped), _accepts(validator))
    if found is not None:
        return Verdict(
            valid=False,
            kind=DeviationKind.EXTRA_TEXT,
            messages=(_extra_text_message(stripped, found),),
            extracted=found.value,
        )
    if extraction.looks_like_refusal(stripped):
        return _deviation(DeviationKind.REFUSAL, f"the model refused: {stripped[:300]}")
    if "{" in stripped or stripped.startswith("["):
        return _deviation(DeviationKind.INVALID_JSON, extraction.syntax_error(stripped))
    return _deviation(DeviationKind.NOT_JSON, "the answer contains no JSON document")


def _truncated(text: str, stripped: str, validator: CompiledSchema) -> Verdict:
    message = (
        "the answer was cut off at the token limit (finish_reason 'length') "
        "before the JSON document was complete"
    )
    run = extraction.trailing_whitespace(text)
    if run >= _RUNAWAY_WHITESPACE:
        message += f"; it ends in {run} whitespace characters (a whitespace run-away)"
    found = extraction.pick(extraction.find_objects(stripped), _accepts(validator))
    return _deviation(
        DeviationKind.TRUNCATED, message, extracted=None if found is None else found.value
    )


def _too_long(length: int, limit: int, cut: bool) -> Verdict:
    message = f"the answer is {length} characters long; at most {limit} are checked"
    if cut:
        return _deviation(DeviationKind.TRUNCATED, message)
    return _deviation(DeviationKind.SCHEMA_VIOLATION, message, keyword=ANSWER_TOO_LONG)


def _extra_text_message(stripped: str, found: extraction.Found) -> str:
    fenced = "```" in stripped[: found.start] or "```" in stripped[found.end :]
    where = "code fences" if fenced else "text"
    return f"the JSON object is surrounded by {where}; answer with the JSON object only"


def _accepts(validator: CompiledSchema) -> Callable[[Any], bool]:
    return lambda value: not validator.problems(value, limit=1)


def _deviation(
    kind: DeviationKind, message: str, *, keyword: str | None = None, extracted: Any = None
) -> Verdict:
    return Verdict(
        valid=False, kind=kind, keyword=keyword, messages=(message,), extracted=extracted
    )
