"""Compiled validators, cached per schema digest.

Validators are built once per schema (keyed by the sha256 of its canonical
JSON) and kept in a bounded LRU cache. They honour ``$schema`` (JSON Schema
2020-12 when absent) and check ``format`` with jsonschema's format checker
(formats whose checker needs an optional package that is not installed, such
as ``uri``, pass unchecked). Time spent on one answer is bounded: answers
longer than ``SchemaBounds.max_answer_chars`` are refused before parsing, at
most :data:`MAX_PROBLEMS` problems are collected, and strings longer than
``max_pattern_subject_chars`` fail a ``pattern`` instead of being matched.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend

from gateway.structured.bounds import (
    CheckedSchema,
    SchemaBounds,
    canonical_json,
    check_schema,
    digest_of,
)

MAX_PROBLEMS = 10
MAX_MESSAGE_CHARS = 300
# The gateway's own keyword for a document too deep for the validator.
TOO_DEEP = "x-max-depth"


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

    def __init__(self, checked: CheckedSchema, validator: Validator, max_answer_chars: int) -> None:
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
        try:
            errors = list(itertools.islice(self._validator.iter_errors(instance), limit))
        except RecursionError:
            return [Problem(TOO_DEEP, "$", "the document nests too deeply to be checked")]
        if not errors:
            return []
        best = best_match(errors)
        ordered = [best, *(e for e in errors if e is not best)] if best in errors else errors
        return [_problem(error) for error in ordered]


def _problem(error: ValidationError) -> Problem:
    message = error.message
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return Problem(keyword=str(error.validator), path=error.json_path, message=message)


class ValidatorCache:
    """Builds validators for schemas that pass ``bounds``; keeps the newest ``max_entries``."""

    def __init__(self, bounds: SchemaBounds | None = None, max_entries: int = 256) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.bounds = bounds if bounds is not None else SchemaBounds()
        self._max_entries = max_entries
        self._entries: OrderedDict[str, CompiledSchema] = OrderedDict()
        self._classes: dict[type[Validator], type[Validator]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, digest: object) -> bool:
        return digest in self._entries

    def compile(self, schema: object) -> CompiledSchema:
        """The validator for ``schema``; raises ``SchemaRejected`` when it breaks a bound."""
        digest = digest_of(canonical_json(schema, self.bounds))
        cached = self._entries.get(digest)
        if cached is not None:
            self._entries.move_to_end(digest)
            return cached
        compiled = self._build(check_schema(schema, self.bounds))
        self._entries[digest] = compiled
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return compiled

    def _build(self, checked: CheckedSchema) -> CompiledSchema:
        cls = self._bounded_class(checked.validator_class)
        validator = cls(checked.schema, format_checker=cls.FORMAT_CHECKER)
        return CompiledSchema(checked, validator, self.bounds.max_answer_chars)

    def _bounded_class(self, base: type[Validator]) -> type[Validator]:
        """``base`` with a ``pattern`` keyword that refuses overlong strings."""
        if base not in self._classes:
            pattern = _bounded_pattern(base, self.bounds.max_pattern_subject_chars)
            self._classes[base] = extend(base, {"pattern": pattern})  # type: ignore[no-untyped-call]
        return self._classes[base]


def _bounded_pattern(base: type[Validator], max_chars: int) -> Any:
    original = base.VALIDATORS["pattern"]

    def pattern(
        validator: Validator, regex: str, instance: object, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        # Even a safe-looking regex can take quadratic time; long subjects are not matched.
        if isinstance(instance, str) and len(instance) > max_chars:
            yield ValidationError(
                f"string of {len(instance)} characters is too long to check against "
                f"pattern {regex[:100]!r} (at most {max_chars})"
            )
            return
        yield from original(validator, regex, instance, schema)

    return pattern
