"""Telling, while an answer is still being generated, that it can no longer be valid.

A structured request's first attempt is unconstrained. When it deviates, every token
generated after the moment it went wrong is paid for and thrown away. ``PrefixCheck``
reads the answer as it streams in and says when to stop:

* the answer opens with prose (or a code fence), or with a value the schema's top-level
  ``type`` excludes. Prose that might still become a refusal ("I'm sorry, I can't …") is
  read to the end of its first sentence first, so refusals keep their kind;
* the JSON it opened is broken (``jiter`` parses the prefix in partial mode and names the
  first impossible character);
* the JSON so far already breaks the schema: an object key the schema forbids, a string
  that no ``enum`` member starts with, a value of a type the property excludes;
* a complete document is followed by more text, or a complete document fails the schema.

The verdict for a stopped answer is the classifier's on the text received, except a
schema break found in unfinished JSON, which is a ``schema_violation`` with the keyword
that failed (the classifier would call the unfinished text ``invalid_json``).

No library checks a JSON *prefix* against a schema, so ``_prefix_problem`` is written
here. It understands ``type``, ``properties``, ``additionalProperties: false``,
``items`` (not tuples) and string ``enum`` and says nothing about any schema part it does not
know (``$ref``, ``anyOf``, ``prefixItems``, ...): a stop is always right, and a missed one
costs only time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

import jiter
import regex

from gateway.structured import extraction
from gateway.structured.deviations import DeviationKind, Verdict, classify
from gateway.structured.validation import CompiledSchema

# The refusal opening of ``extraction``, matched partially: may this text still become one?
_REFUSAL_OPENING = regex.compile(extraction.REFUSAL_OPENING, regex.IGNORECASE | regex.VERBOSE)
# The first sentence of a refusal is read up to its end, at most this far.
_REFUSAL_WINDOW = 300
_SENTENCE_END = regex.compile(r"[.!?\n]")
# Characters that may open some JSON value.
_JSON_STARTS = frozenset('{["-0123456789tfn')
FENCE = "```"
# A fence's info string ("json") ends at its line's end; a longer first line is not a fence.
_MAX_FENCE_INFO = 24
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean"}


class PrefixCheck:
    """Reads an answer as it streams and says when it can no longer be valid.

    ``feed`` takes each new piece of text and returns the verdict to record once the
    answer is doomed, else None. ``read_prose`` keeps reading an answer that opened with
    prose until a JSON object inside it is complete (for the ``extract`` strategy).
    Checking work stays linear in the answer's length: the prefix is parsed again only
    once it has grown by an eighth.
    """

    def __init__(self, validator: CompiledSchema, *, read_prose: bool = False) -> None:
        self.validator = validator
        self.read_prose = read_prose
        self.text = ""
        self._checked_at = 0
        schema = validator.schema
        self._top_type = schema.get("type") if isinstance(schema.get("type"), str) else None

    def feed(self, piece: str) -> Verdict | None:
        self.text += piece
        stripped = self.text.lstrip()
        if not stripped:
            return None
        if len(stripped) > self.validator.max_answer_chars:
            return None  # the classifier's own bound decides such an answer at the end
        first = stripped[0]
        if first in "{[":
            if self._top_type in ("object", "array") and first != (
                "{" if self._top_type == "object" else "["
            ):
                found = "an array" if first == "[" else "an object"
                return _violation("type", f"$: the answer is {found}; the schema expects "
                                          f"{'an ' + self._top_type}")
            if self._due(len(stripped)):
                return self._check_json(stripped)
            return None
        if first == "`":
            return self._check_fence(stripped)
        if first in _JSON_STARTS and self._top_type not in ("object", "array"):
            return None  # a scalar the schema may allow: decided at the end
        return self._check_prose(stripped)

    def _due(self, length: int) -> bool:
        if length - self._checked_at < max(1, self._checked_at // 8):
            return False
        self._checked_at = length
        return True

    def _check_json(self, stripped: str) -> Verdict | None:
        partial = _partial(stripped)
        if partial is _BROKEN:
            return self._classified()  # broken JSON: invalid_json, or prose around an object
        try:
            document, end = extraction.raw_decode(stripped)
        except (ValueError, RecursionError):
            problem = _prefix_problem(partial, self.validator.schema, "$")
            return None if problem is None else _violation(*problem)
        if stripped[end:].strip():
            return self._classified()  # a complete document and more text: extra_text
        if self.validator.problems(document, limit=1):
            return self._classified()  # complete and failing the schema
        return None

    def _check_fence(self, stripped: str) -> Verdict | None:
        """A fenced answer is ``extra_text`` once its object is complete: read that far."""
        if not FENCE.startswith(stripped[:3]):
            return self._classified()
        newline = stripped.find("\n")
        if newline == -1:
            return None if len(stripped) <= _MAX_FENCE_INFO else self._classified()
        inner = stripped[newline + 1:].lstrip()
        if not inner:
            return None
        if inner[0] not in "{[":
            return self._classified()
        if not self._due(len(stripped)):
            return None
        if _broken(inner):
            return self._classified()  # invalid_json
        try:
            extraction.raw_decode(inner)
        except (ValueError, RecursionError):
            return None  # not complete yet
        return self._classified()  # a complete fenced object: extra_text

    def _check_prose(self, stripped: str) -> Verdict | None:
        if self.read_prose:
            if not self._due(len(stripped)) or not extraction.find_objects(stripped, limit=1):
                return None
            return self._classified()  # an object inside prose: extract can take it
        opening = stripped[:_REFUSAL_WINDOW]
        match = _REFUSAL_OPENING.match(opening, partial=True)
        if match is not None and (match.partial or not _SENTENCE_END.search(opening)) and (
            len(stripped) < _REFUSAL_WINDOW
        ):
            return None  # may still be a refusal: read its first sentence
        return self._classified()

    def _classified(self) -> Verdict:
        return classify(self.text, None, self.validator)


_BROKEN = object()


def _partial(text: str) -> Any:
    """The document ``text`` begins, as far as it goes, or ``_BROKEN`` if it cannot go on."""
    try:
        return jiter.from_json(text.encode(), partial_mode="trailing-strings")
    except ValueError:
        return _BROKEN


def _broken(text: str) -> bool:
    return _partial(text) is _BROKEN


def _prefix_problem(value: Any, schema: Any, path: str) -> tuple[str, str] | None:
    """(keyword, message) when the partial ``value`` can no longer satisfy ``schema``."""
    if not isinstance(schema, Mapping) or any(k in schema for k in _UNKNOWN_KEYS):
        return None
    expected = schema.get("type")
    found = _JSON_TYPES.get(type(value))
    if isinstance(expected, str) and found is not None and expected != found:
        return "type", f"{path}: {_short(value)} is not of type '{expected}'"
    enum = schema.get("enum")
    if isinstance(value, str) and _string_enum(enum) and not any(
        member.startswith(value) for member in enum
    ):
        return "enum", f"{path}: {_short(value)} is not one of {enum}"
    if isinstance(value, dict):
        return _object_problem(value, schema, path)
    items = schema.get("items")
    # Tuples (prefixItems; draft-07's list-valued items) type each position apart, and
    # which keyword a draft reads decides it: their elements are left to the final check.
    if isinstance(value, list) and isinstance(items, Mapping) and "prefixItems" not in schema:
        for index, item in enumerate(value):
            problem = _prefix_problem(item, items, f"{path}[{index}]")
            if problem is not None:
                return problem
    return None


def _object_problem(value: dict[str, Any], schema: Mapping[str, Any], path: str
                    ) -> tuple[str, str] | None:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    closed = schema.get("additionalProperties") is False and "patternProperties" not in schema
    for key, item in value.items():
        if key not in properties:
            if closed:
                return ("additionalProperties",
                        f"{path}: additional property {key!r} is not allowed")
            continue
        problem = _prefix_problem(item, properties[key], f"{path}.{key}")
        if problem is not None:
            return problem
    return None


_UNKNOWN_KEYS = ("$ref", "$dynamicRef", "allOf", "anyOf", "oneOf", "not", "if",
                 "dependentSchemas", "unevaluatedProperties", "unevaluatedItems")


def _string_enum(enum: Any) -> TypeGuard[list[str]]:
    return isinstance(enum, list) and all(isinstance(member, str) for member in enum)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _violation(keyword: str, message: str) -> Verdict:
    return Verdict(valid=False, kind=DeviationKind.SCHEMA_VIOLATION, keyword=keyword,
                   messages=(message + " (seen before the answer was complete)",))
