"""Bounds that every JSON Schema must satisfy before the gateway uses it.

A schema may come from a client, so it is treated as hostile. Admission asks only what
validation needs: the schema is checked for size first (serializing is linear and cheap),
then for shape (nesting, property, enum and reference counts, the length of its regular
expressions), then against its metaschema, and finally compiled by jsonschema-rs
(``validation``), which resolves its references without fetching anything and runs its
regular expressions in linear time. Each refusal is a :class:`SchemaRejected` naming the
problem, where in the schema it is, and the limit.

Recursive references, embedded ``$id`` resources, hundreds of properties and ordinary
patterns (URLs, versions) are admitted: validating them is linear in the answer. What a
schema can cost the *engine*, compiling its grammar for constrained decoding, is not
judged here but measured, per schema, by the compile check (``gateway.grammar``).

The empty schema ``{}`` (or one with annotations only) is accepted and marked
``accepts_anything``: it still makes the gateway check that the answer is a
complete JSON document, which is what a client asking for "any JSON" wants.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
)
from jsonschema.protocols import Validator
from pydantic import BaseModel, ConfigDict, Field

from gateway.structured.errors import SchemaRejected
from gateway.structured.walk import Node, children, describe, json_depth, pointer, walk

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")

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

    max_schema_bytes: int = Field(1_048_576, ge=2, description="Serialized size of a schema.")
    max_depth: int = Field(64, ge=1, description="Levels of subschemas, the root being 1.")
    max_properties: int = Field(4_000, ge=1, description="Property definitions in one schema.")
    max_enum_values: int = Field(10_000, ge=1, description="Values in one enum.")
    max_refs: int = Field(10_000, ge=0, description="$ref keywords in one schema.")
    max_pattern_chars: int = Field(
        65_536, ge=1, description="Characters of all regular expressions in one schema."
    )
    max_expanded_subschemas: int = Field(
        1_000_000, ge=1,
        description="Subschemas one value may be checked against, references followed.",
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
        # jsonschema-rs checks the metaschema (its regex formats included) in a millisecond
        # where jsonschema takes most of a second on a large schema.
        jsonschema_rs.meta.validate(dict(schema))
    except jsonschema_rs.ValidationError as exc:
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                              for p in exc.instance_path)
        hint = _TYPE_HINT if list(exc.instance_path)[-1:] == ["type"] else ""
        raise SchemaRejected(f"invalid schema at {where}: "
                             f"{exc.message.splitlines()[0][:300]}{hint}") from exc
    except RecursionError as exc:
        raise SchemaRejected("the schema nests too deeply to be checked") from exc
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
    """Nesting and counts; the metaschema is not consulted, references are not resolved."""
    scan = _Scan(bounds)
    nodes = list(walk(schema))
    for node in nodes:
        scan.visit(node)
    expanded = expansion(schema, bounds.max_expanded_subschemas, nodes)
    if expanded > bounds.max_expanded_subschemas:
        raise SchemaRejected(
            f"the schema's references expand to more than {bounds.max_expanded_subschemas} "
            "subschemas to check one value against (a $ref used twice in a row doubles "
            "them): refer to each definition once per level"
        )
    limit = bounds.max_depth * _RAW_DEPTH_FACTOR
    if json_depth(schema, limit) > limit:
        raise SchemaRejected(
            f"the schema document (enum, const and default values included) nests more than "
            f"{limit} levels of objects and arrays: flatten it"
        )


class _Scan:
    """What the walk over one schema has counted so far."""

    def __init__(self, bounds: SchemaBounds) -> None:
        self.bounds = bounds
        self.properties = 0
        self.refs = 0
        self.pattern_chars = 0

    def visit(self, node: Node) -> None:
        where = describe(node.path)
        if node.depth > self.bounds.max_depth:
            raise SchemaRejected(
                f"the schema nests more than {self.bounds.max_depth} levels deep (at {where}); "
                "flatten it"
            )
        schema = node.schema
        self._count(schema, where)
        self._patterns(schema, where)
        self._references(schema)

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
        # Each pattern is compiled (by jsonschema-rs, with size caps) and matched in linear
        # time; this bounds the compile work of one schema.
        self.pattern_chars += sum(len(pattern) for pattern in patterns)
        if self.pattern_chars > self.bounds.max_pattern_chars:
            raise SchemaRejected(
                f"the schema's regular expressions exceed {self.bounds.max_pattern_chars} "
                f"characters in all (at {where}); use shorter patterns"
            )

    def _references(self, schema: Mapping[str, Any]) -> None:
        self.refs += sum(isinstance(schema.get(keyword), str) for keyword in REF_KEYWORDS)
        if self.refs > self.bounds.max_refs:
            raise SchemaRejected(
                f"the schema has more than {self.bounds.max_refs} references ($ref); "
                "simplify it"
            )


# Keywords whose subschemas apply only through references.
_DEFINITIONS = frozenset({"$defs", "definitions"})
_ANCHORS = ("$anchor", "$dynamicAnchor")


def expansion(root: Mapping[str, Any], limit: int, nodes: list[Node] | None = None) -> int:
    """How many subschemas checking one value can visit, references followed: capped at
    ``limit + 1``.

    jsonschema-rs follows a ``$ref`` every time it meets it, so ``allOf: [{"$ref": "#/$defs/a"},
    {"$ref": "#/$defs/a"}]`` at each of 40 levels is 2**40 checks of one small answer, with
    the event loop's thread held meanwhile (it keeps the GIL). Written by hand: no library
    counts this. Counted once per subschema (memoised), in time linear in the schema; a
    reference back into itself (recursion) counts 1, as its cost grows with the answer's
    own depth, which validation bounds. A reference this count cannot resolve (one into an
    embedded resource) counts as the whole schema. ``nodes``: ``walk(root)``, when the caller
    has walked it already.
    """
    nodes = list(walk(root)) if nodes is None else nodes
    by_pointer = {pointer(node.path): node.schema for node in nodes}
    by_anchor = {str(node.schema[k]): node.schema for node in nodes for k in _ANCHORS
                 if isinstance(node.schema.get(k), str)}
    by_id = {str(node.schema["$id"]).rstrip("#"): node.schema for node in nodes
             if isinstance(node.schema.get("$id"), str)}
    whole = len(nodes)

    def applied(schema: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], int]:
        found = [sub for suffix, sub in children(schema) if suffix[0] not in _DEFINITIONS]
        unresolved = 0
        for keyword in REF_KEYWORDS:
            ref = schema.get(keyword)
            if not isinstance(ref, str):
                continue
            target = _target(ref, by_pointer, by_anchor, by_id)
            if target is None:
                unresolved += whole
            else:
                found.append(target)
        return found, unresolved

    memo: dict[int, int] = {}
    visiting: set[int] = set()
    first, extra = applied(root)
    stack: list[list[Any]] = [[root, first, 0, 1 + extra]]
    visiting.add(id(root))
    while stack:
        frame = stack[-1]
        schema, subs, index, total = frame
        if index == len(subs):
            stack.pop()
            visiting.discard(id(schema))
            memo[id(schema)] = total
            if stack:
                stack[-1][3] = min(stack[-1][3] + total, limit + 1)
            continue
        frame[2] += 1
        sub = subs[index]
        if id(sub) in memo:
            frame[3] = min(total + memo[id(sub)], limit + 1)
        elif id(sub) in visiting:
            frame[3] = min(total + 1, limit + 1)
        else:
            visiting.add(id(sub))
            found, extra = applied(sub)
            stack.append([sub, found, 0, 1 + extra])
    return memo[id(root)]


def _target(ref: str, by_pointer: Mapping[str, Mapping[str, Any]],
            by_anchor: Mapping[str, Mapping[str, Any]],
            by_id: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    base, _, fragment = ref.partition("#")
    if base:
        resource = by_id.get(base)
        return resource if resource is not None and not fragment else None
    fragment = unquote(fragment)
    if not fragment or fragment.startswith("/"):
        return by_pointer.get(fragment)
    return by_anchor.get(fragment)


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
