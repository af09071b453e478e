"""Compiled validators, cached per schema digest.

Answers are validated with ``jsonschema-rs``: its regular expressions run on Rust's
``regex`` engine, which matches in time linear in the subject (``^(a+)+$`` against
50,000 characters takes well under a millisecond), so no ``pattern``,
``patternProperties`` key or ``format: regex`` in a client's schema can stall the
gateway, and checking a small ticket takes about a microsecond. Nothing is ever fetched:
references resolve inside the schema (embedded ``$id`` resources included) and the
retriever refuses any URI.

Validators are built once per schema (keyed by the sha256 of its canonical JSON) and kept
in a bounded LRU cache. They honour ``$schema`` (JSON Schema 2020-12 when absent) and
check ``format``. Time and memory spent on one answer are bounded: answers longer than
``SchemaBounds.max_answer_chars`` are refused before parsing, documents nested deeper
than :data:`MAX_DOCUMENT_DEPTH` are not handed to the native validator, at most
:data:`MAX_PROBLEMS` problems are collected, and compiled regexes are size-capped.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from gateway.structured.bounds import (
    CheckedSchema,
    SchemaBounds,
    canonical_json,
    check_schema,
    digest_of,
)
from gateway.structured.errors import SchemaRejected
from gateway.structured.walk import json_depth

MAX_PROBLEMS = 10
MAX_MESSAGE_CHARS = 300
# The gateway's own keyword for a document too deep for the validator.
TOO_DEEP = "x-max-depth"
# Deeper documents are refused before validation: the native validator recurses per level,
# and a stack overflow there would end the process, not raise.
MAX_DOCUMENT_DEPTH = 128
# Caps on one compiled regex (the regex crate's own limits, in bytes).
_REGEX_SIZE_LIMIT = 1 << 20
_REGEX_DFA_LIMIT = 2 << 20
_REF_HINT = ("references must point inside the schema, such as '#/$defs/name' (remote "
             "schemas are never fetched): copy the referenced schema into $defs")
_REGEX_HINT = "regular expressions may not use look-arounds or back-references"
# Errors under these keywords only say that no branch matched: the branch's own error,
# deeper in the document, tells more.
_WEAK = frozenset({"anyOf", "oneOf"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One way an answer fails its schema, located by JSON path (``$.items[0].sku``)."""

    keyword: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class CompiledSchema:
    """A schema that passed the bounds, with its validator."""

    __slots__ = ("_checked", "_validator", "max_answer_chars")

    def __init__(
        self, checked: CheckedSchema, validator: jsonschema_rs.Validator, max_answer_chars: int
    ) -> None:
        self._checked = checked
        self._validator = validator
        self.max_answer_chars = max_answer_chars

    @property
    def schema(self) -> Mapping[str, Any]:
        return self._checked.schema

    @property
    def digest(self) -> str:
        return self._checked.digest

    @property
    def accepts_anything(self) -> bool:
        """True for ``{}``-like schemas: only JSON syntax is checked."""
        return self._checked.accepts_anything

    def problems(self, instance: Any, limit: int = MAX_PROBLEMS) -> list[Problem]:
        """Why ``instance`` fails the schema, most relevant first; empty when valid."""
        if json_depth(instance, MAX_DOCUMENT_DEPTH) > MAX_DOCUMENT_DEPTH:
            return [Problem(TOO_DEEP, "$", f"the document nests more than {MAX_DOCUMENT_DEPTH} "
                                           "levels deep to be checked")]
        if self._validator.is_valid(instance):
            return []
        errors = list(itertools.islice(self._validator.iter_errors(instance), limit))
        # Shallow before deep (more of the answer is wrong), "no branch matched" last.
        errors.sort(key=lambda e: (_keyword(e) in _WEAK, len(e.instance_path)))
        return [_problem(error) for error in errors]


def _keyword(error: jsonschema_rs.ValidationError) -> str:
    path = error.schema_path
    return str(path[-1]) if path else "schema"


def _problem(error: jsonschema_rs.ValidationError) -> Problem:
    message = error.message
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return Problem(keyword=_keyword(error), path=_json_path(error.instance_path),
                   message=message)


def _json_path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _refuse_retrieval(uri: str) -> Any:
    raise ValueError(f"{uri} is not fetched: only references inside the schema are allowed")


class ValidatorCache:
    """Builds validators for schemas that pass ``bounds``; keeps the newest ``max_entries``."""

    def __init__(self, bounds: SchemaBounds | None = None, max_entries: int = 256) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.bounds = bounds if bounds is not None else SchemaBounds()
        self._max_entries = max_entries
        self._entries: OrderedDict[str, CompiledSchema] = OrderedDict()
        # Schemas are compiled in worker threads (never on the event loop), several at once.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, digest: object) -> bool:
        return digest in self._entries

    def compile(self, schema: object) -> CompiledSchema:
        """The validator for ``schema``; raises ``SchemaRejected`` when it breaks a bound."""
        digest = digest_of(canonical_json(schema, self.bounds))
        with self._lock:
            cached = self._entries.get(digest)
            if cached is not None:
                self._entries.move_to_end(digest)
                return cached
        compiled = self._build(check_schema(schema, self.bounds))  # outside the lock: slow
        with self._lock:
            self._entries[digest] = compiled
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return compiled

    def _build(self, checked: CheckedSchema) -> CompiledSchema:
        try:
            validator = jsonschema_rs.validator_for(
                dict(checked.schema),
                validate_formats=True,
                retriever=_refuse_retrieval,
                pattern_options=jsonschema_rs.RegexOptions(
                    size_limit=_REGEX_SIZE_LIMIT, dfa_size_limit=_REGEX_DFA_LIMIT),
            )
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError,
                ValueError) as exc:
            # Past the metaschema and the bounds, what is left is a reference that does not
            # resolve inside the schema, or what the linear-time regex engine cannot run
            # (look-arounds, back-references, oversized repeats).
            message = (getattr(exc, "message", None) or str(exc)).splitlines()[0][:300]
            hint = (_REF_HINT if any(word in message for word in ("Resource", "Pointer", "ref"))
                    else _REGEX_HINT)
            raise SchemaRejected(f"the schema cannot be used: {message}; {hint}") from exc
        return CompiledSchema(checked, validator, self.bounds.max_answer_chars)
