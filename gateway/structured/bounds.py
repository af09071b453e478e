"""Bounds that every JSON Schema must satisfy before the gateway uses it.

A schema may come from a client, so it is treated as hostile: it is checked
for size first (serializing is linear and cheap), then for shape (nesting,
property and enum counts, references, regular expressions) and only then
against its metaschema. Each refusal is a :class:`SchemaRejected` naming the
problem, where in the schema it is, and the limit.

The empty schema ``{}`` (or one with annotations only) is accepted and marked
``accepts_anything``: it still makes the gateway check that the answer is a
complete JSON document, which is what a client asking for "any JSON" wants.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
)
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from pydantic import BaseModel, ConfigDict, Field

from gateway.structured.errors import SchemaRejected
from gateway.structured.refs import REF_KEYWORDS, RefSite, anchor_name, check_cycles, resolve
from gateway.structured.regex_safety import catastrophic_reason
from gateway.structured.walk import Node, Path, describe, json_depth, walk

# Keywords that describe a schema without constraining the answer.
_ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$defs", "definitions", "title", "description",
    "default", "examples", "deprecated", "readOnly", "writeOnly",
})
_TYPE_HINT = " (types are array, boolean, integer, null, number, object and string)"
# Raw JSON may nest this many times deeper than the schema levels (properties -> name -> schema).
_RAW_DEPTH_FACTOR = 4


class SchemaBounds(BaseModel):
    """Limits on schemas and on the answers validated against them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_schema_bytes: int = Field(65_536, ge=2, description="Serialized size of a schema.")
    max_depth: int = Field(16, ge=1, description="Levels of subschemas, the root being 1.")
    max_properties: int = Field(256, ge=1, description="Property definitions in one schema.")
    max_enum_values: int = Field(1_000, ge=1, description="Values in one enum.")
    max_refs: int = Field(256, ge=0, description="$ref keywords in one schema.")
    max_pattern_chars: int = Field(
        4_096, ge=1, description="Characters of all regular expressions in one schema."
    )
    max_answer_chars: int = Field(
        65_536, ge=1, description="Longer answers are refused without being parsed."
    )


@dataclass(frozen=True, slots=True)
class CheckedSchema:
    """A schema that passed the bounds: its canonical form and what validates it."""

    schema: Mapping[str, Any]
    canonical: str
    digest: str
    validator_class: type[Validator]
    accepts_anything: bool = field(default=False)


def as_schema(value: object) -> Mapping[str, Any]:
    """``value`` as a schema object; booleans and other JSON values are refused."""
    if not isinstance(value, Mapping):
        raise SchemaRejected(
            f"a JSON Schema must be a JSON object, not {type(value).__name__}; "
            "use {} to accept any JSON document"
        )
    return value


def canonical_json(schema: object, bounds: SchemaBounds) -> str:
    """The schema as canonical JSON (sorted keys, compact), refused when too large."""
    as_schema(schema)
    try:
        text = json.dumps(
            schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except RecursionError as exc:
        raise SchemaRejected("the schema nests too deeply to be read") from exc
    except (TypeError, ValueError) as exc:
        raise SchemaRejected(f"the schema is not plain JSON: {exc}") from exc
    size = len(text.encode())
    if size > bounds.max_schema_bytes:
        raise SchemaRejected(
            f"the schema is {size} bytes as compact JSON; the limit is "
            f"{bounds.max_schema_bytes} bytes: use a smaller schema"
        )
    return text


def digest_of(canonical: str) -> str:
    """The cache key of a schema: sha256 of its canonical JSON."""
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_schema(value: object, bounds: SchemaBounds) -> CheckedSchema:
    """Checks every bound and the metaschema; raises :class:`SchemaRejected`."""
    canonical = canonical_json(value, bounds)
    schema = as_schema(value)
    check_shape(schema, bounds)
    validator_class = _validator_class(schema)
    try:
        validator_class.check_schema(dict(schema))
    except SchemaError as exc:
        hint = _TYPE_HINT if list(exc.path)[-1:] == ["type"] else ""
        message = f"invalid schema at {exc.json_path}: {exc.message[:300]}{hint}"
        raise SchemaRejected(message) from exc
    return CheckedSchema(
        # A private copy (the caller's dict may change later) that keeps the key order:
        # the grammar for constrained decoding lists properties in that order.
        schema=copy.deepcopy(dict(schema)),
        canonical=canonical,
        digest=digest_of(canonical),
        validator_class=validator_class,
        accepts_anything=not (set(schema) - _ANNOTATIONS),
    )


def check_shape(schema: Mapping[str, Any], bounds: SchemaBounds) -> None:
    """Nesting, counts, references and patterns; the metaschema is not consulted."""
    scan = _Scan(bounds, _id_keywords(schema))
    for node in walk(schema):
        scan.visit(node)
    limit = bounds.max_depth * _RAW_DEPTH_FACTOR
    if json_depth(schema, limit) > limit:
        raise SchemaRejected(
            f"the schema document (enum, const and default values included) nests more than "
            f"{limit} levels of objects and arrays: flatten it"
        )
    scan.check_refs()


class _Scan:
    """What the walk over one schema has seen so far."""

    def __init__(self, bounds: SchemaBounds, id_keywords: tuple[str, ...] = ("$id",)) -> None:
        self.bounds = bounds
        self.id_keywords = id_keywords
        self.properties = 0
        self.paths: set[Path] = set()
        self.anchors: dict[str, Path] = {}
        self.refs: list[tuple[Path, str]] = []
        self.pattern_chars = 0

    def visit(self, node: Node) -> None:
        where = describe(node.path)
        if node.depth > self.bounds.max_depth:
            raise SchemaRejected(
                f"the schema nests more than {self.bounds.max_depth} levels deep (at {where}); "
                "flatten it"
            )
        self.paths.add(node.path)
        schema = node.schema
        for keyword in self.id_keywords:
            if node.path and isinstance(schema.get(keyword), str):
                raise SchemaRejected(
                    f"{keyword} at {where}: embedded schema resources are not supported; "
                    f"move the subschema under $defs without an {keyword}"
                )
        self._count(schema, where)
        self._patterns(schema, where)
        self._references(node)

    def _count(self, schema: Mapping[str, Any], where: str) -> None:
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            self.properties += len(properties)
            if self.properties > self.bounds.max_properties:
                raise SchemaRejected(
                    f"the schema defines more than {self.bounds.max_properties} properties "
                    "in all; split it into smaller schemas"
                )
        enum = schema.get("enum")
        if isinstance(enum, list) and len(enum) > self.bounds.max_enum_values:
            raise SchemaRejected(
                f"the enum at {where} has {len(enum)} values; the limit is "
                f"{self.bounds.max_enum_values}: use a pattern or a plain string instead"
            )

    def _patterns(self, schema: Mapping[str, Any], where: str) -> None:
        patterns = [schema["pattern"]] if isinstance(schema.get("pattern"), str) else []
        if isinstance(schema.get("patternProperties"), Mapping):
            patterns.extend(schema["patternProperties"])
        for pattern in patterns:
            # The analysis is linear-ish in pattern length; this bounds its total time.
            self.pattern_chars += len(pattern)
            if self.pattern_chars > self.bounds.max_pattern_chars:
                raise SchemaRejected(
                    f"the schema's regular expressions exceed {self.bounds.max_pattern_chars} "
                    f"characters in all (at {where}); use shorter patterns"
                )
            check_pattern(pattern, where)

    def _references(self, node: Node) -> None:
        anchor = anchor_name(node.schema)
        if anchor is not None:
            self.anchors[anchor] = node.path
        for keyword in REF_KEYWORDS:
            ref = node.schema.get(keyword)
            if isinstance(ref, str):
                self.refs.append((node.path, ref))
        if len(self.refs) > self.bounds.max_refs:
            raise SchemaRejected(
                f"the schema has more than {self.bounds.max_refs} references ($ref); "
                "simplify it"
            )

    def check_refs(self) -> None:
        paths = frozenset(self.paths)
        sites = [RefSite(path, resolve(ref, path, self.anchors, paths)) for path, ref in self.refs]
        check_cycles(sites)


def check_pattern(pattern: str, where: str) -> None:
    """Refuses a regular expression that does not parse or may backtrack catastrophically."""
    try:
        reason = catastrophic_reason(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise SchemaRejected(
            f"pattern {pattern[:100]!r} at {where} is not a valid regular expression: {exc}"
        ) from exc
    if reason:
        raise SchemaRejected(
            f"pattern {pattern[:100]!r} at {where} can take exponential time to match: "
            f"{reason}; rewrite it so that repeated parts are separated by a fixed character, "
            "as in '[a-z]+(-[a-z]+)*'"
        )


def _id_keywords(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """Draft 4 spells ``$id`` as ``id``: there a string ``id`` changes what refs resolve to."""
    declared = schema.get("$schema")
    draft4 = isinstance(declared, str) and "draft-04" in declared
    return ("$id", "id") if draft4 else ("$id",)


def _validator_class(schema: Mapping[str, Any]) -> type[Validator]:
    declared = schema.get("$schema")
    if declared is None:
        return Draft202012Validator
    for cls in (
        Draft202012Validator, Draft201909Validator, Draft7Validator, Draft6Validator,
        Draft4Validator,
    ):
        known = str(cls.META_SCHEMA.get("$id", cls.META_SCHEMA.get("id", "")))
        if isinstance(declared, str) and declared.rstrip("#") == known.rstrip("#"):
            return cls
    raise SchemaRejected(
        f"unsupported $schema {str(declared)[:200]!r}; omit it (JSON Schema 2020-12 is used) "
        "or name draft 4, 6, 7, 2019-09 or 2020-12"
    )
